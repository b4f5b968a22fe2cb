"""rbac.authorization.k8s.io/v1 RoleBinding: who may view, edit or administer a vSphere Namespace.

The Supervisor grants namespace permissions as view/edit/admin; here a RoleBinding in the
namespace grants one of the built-in ClusterRoles this server authorizes, and only those.
"""

from __future__ import annotations

from typing import Any

from nestlab.api.kinds.base import AGE, NAME, PROTO_META, READ, WRITE, Column, Kind, Obj, Resource
from nestlab.api.kinds.common import check_metadata, type_causes
from nestlab.api.kinds.printing import created
from nestlab.api.status import Cause

RESOURCE = Resource("rolebindings", "rolebinding", "RoleBinding", "rbac.authorization.k8s.io", "v1", True)
CLUSTER_ROLES = ("view", "edit", "admin")
_SUBJECT = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
_ROLE_REF = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}


def validate(binding: Obj) -> list[Cause]:
    """RoleBindings may only grant the built-in ClusterRoles this server authorizes."""
    causes = check_metadata(binding)
    shape = type_causes(binding, {"roleRef": dict, "subjects": list})
    if shape:
        return causes + shape
    ref = binding.get("roleRef") or {}
    if ref.get("kind") != "ClusterRole":
        causes.append(
            Cause(
                "roleRef.kind",
                f'Unsupported value: "{ref.get("kind", "")}": supported values: "ClusterRole"',
                "FieldValueNotSupported",
            )
        )
    if ref.get("name") not in CLUSTER_ROLES:
        supported = ", ".join(f'"{r}"' for r in CLUSTER_ROLES)
        causes.append(
            Cause(
                "roleRef.name",
                f'Unsupported value: "{ref.get("name", "")}": supported values: {supported}',
                "FieldValueNotSupported",
            )
        )
    for index, subject in enumerate(binding.get("subjects") or []):
        if not isinstance(subject, dict) or subject.get("kind") not in ("User", "Group", "ServiceAccount"):
            causes.append(
                Cause(
                    f"subjects[{index}].kind",
                    'Unsupported value: supported values: "User", "Group", "ServiceAccount"',
                    "FieldValueNotSupported",
                )
            )
        elif not subject.get("name"):
            causes.append(Cause(f"subjects[{index}].name", "Required value", "FieldValueRequired"))
    return causes


def row(binding: Obj) -> list[Any]:
    subjects = binding.get("subjects") or []

    def named(kind: str) -> str:
        return ", ".join(s.get("name", "") for s in subjects if s.get("kind") == kind)

    ref = binding.get("roleRef") or {}
    return [
        binding["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        created(binding),
        named("User"),
        named("Group"),
        named("ServiceAccount"),
    ]


KIND = Kind(
    RESOURCE,
    model="V1RoleBinding",
    validate=validate,
    columns=(
        NAME,
        Column("Role", "string", 0, "RoleRef is the reference to the role the binding grants."),
        AGE,
        Column("Users", "string", 1, "Users in the binding"),
        Column("Groups", "string", 1, "Groups in the binding"),
        Column("ServiceAccounts", "string", 1, "ServiceAccounts in the binding"),
    ),
    row=row,
    roles={"admin": {"rolebindings": READ | WRITE}},
    protobuf={1: ("metadata", PROTO_META), 2: ("subjects", ("list", _SUBJECT)), 3: ("roleRef", _ROLE_REF)},
)
