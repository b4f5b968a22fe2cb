"""rbac.authorization.k8s.io/v1 RoleBinding: who holds a role inside one namespace.

The Supervisor grants vSphere Namespace permissions as view/edit/admin: here that is a RoleBinding
in the namespace to the ClusterRole ``view``, ``edit`` or ``admin`` (``nestlab namespace create
--edit alice``), and, as upstream, any Role of the namespace or any other ClusterRole may be bound
too. A binding to a role that does not exist is accepted, as upstream accepts it, and grants
nothing until the role appears. The role a binding grants never changes (``cannot change
roleRef``); binding a role you do not hold is refused by :mod:`nestlab.api.escalation`.
"""

from __future__ import annotations

from nestlab.api.kinds import rbac
from nestlab.api.kinds.base import READ, WRITE, Kind, Obj, Resource
from nestlab.api.status import Cause

RESOURCE = Resource("rolebindings", "rolebinding", "RoleBinding", rbac.GROUP, "v1", True)
ROLE_KINDS = ("Role", "ClusterRole")


def validate(binding: Obj) -> list[Cause]:
    """Upstream ValidateRoleBinding (a ServiceAccount subject defaults to the binding's namespace)."""
    return rbac.check_binding(binding, ROLE_KINDS, namespaced=True)


KIND = Kind(
    RESOURCE,
    model="V1RoleBinding",
    default=rbac.default_binding,
    validate=validate,
    validate_update=rbac.check_binding_update,
    columns=rbac.binding_columns("roleBinding"),
    row=rbac.binding_row,
    roles={"admin": {"rolebindings": READ | WRITE}},
    protobuf=rbac.BINDING,
)
