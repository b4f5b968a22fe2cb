"""What the four rbac.authorization.k8s.io/v1 kinds share: names, rules, subjects, role references.

Role and ClusterRole hold PolicyRules; RoleBinding and ClusterRoleBinding hold a RoleRef and
Subjects. Upstream validates them in pkg/apis/rbac/validation (``ValidatePolicyRule``,
``ValidateRoleBindingSubject``, ``ValidateRBACName``: a path segment, so ``system:basic-user`` is a
good name although it is not a DNS name), defaults them in ``SetDefaults_RoleBinding`` /
``SetDefaults_Subject`` and prints bindings with ``printRoleBinding``; the units share these here
so that the four answer alike. Field paths and messages are upstream's.
"""

from __future__ import annotations

import json
from typing import Any

from nestlab.api.kinds.base import AGE, NAME, Column, Obj
from nestlab.api.kinds.common import (
    as_dict,
    check_labels,
    check_map_of_strings,
    check_name,
    check_owner_references,
    type_causes,
)
from nestlab.api.kinds.printing import created
from nestlab.api.kinds.wiremeta import OBJECT_META, Schema, listed
from nestlab.api.status import Cause

GROUP = "rbac.authorization.k8s.io"
SUBJECT_KINDS = ("ServiceAccount", "User", "Group")
_REF_FIELDS = (("APIGroup", "apiGroup"), ("Kind", "kind"), ("Name", "name"))
"""Go field name -> JSON name of rbac.RoleRef, in Go's order (for ``%#v``)."""

# -- protobuf (k8s.io/api rbac/v1 generated.proto) --------------------------------------------------
POLICY_RULE: Schema = {
    1: ("verbs", "strs"),
    2: ("apiGroups", "strs"),
    3: ("resources", "strs"),
    4: ("resourceNames", "strs"),
    5: ("nonResourceURLs", "strs"),
}
SUBJECT: Schema = {1: ("kind", "str"), 2: ("apiGroup", "str"), 3: ("name", "str"), 4: ("namespace", "str")}
ROLE_REF: Schema = {1: ("apiGroup", "str"), 2: ("kind", "str"), 3: ("name", "str")}
ROLE: Schema = {1: ("metadata", OBJECT_META), 2: ("rules", listed(POLICY_RULE))}
BINDING: Schema = {1: ("metadata", OBJECT_META), 2: ("subjects", listed(SUBJECT)), 3: ("roleRef", ROLE_REF)}


def go_strings(values: list[Any]) -> str:
    """Go's ``%#v`` of a ``[]string`` (how upstream shows an invalid list): ``[]string{"/a", "/b"}``."""
    return "[]string{" + ", ".join(json.dumps(str(v)) for v in values) + "}"


def check_rbac_name(name: str, path: str) -> list[Cause]:
    """Upstream ValidateRBACName (path.IsValidPathSegmentName)."""
    if name in (".", ".."):
        return [Cause(path, f"Invalid value: \"{name}\": may not be '{name}'")]
    return [
        Cause(path, f"Invalid value: \"{name}\": may not contain '{bad}'")
        for bad in ("/", "%")
        if bad in name
    ]


def check_rbac_metadata(obj: Obj) -> list[Cause]:
    """ObjectMeta checks with RBAC's name rule instead of the DNS subdomain rule."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [Cause("metadata", "Required value: metadata is required", "FieldValueRequired")]
    name = meta.get("name", "")
    if not isinstance(name, str):
        return [Cause("metadata.name", "Invalid value: must be a string", "FieldValueTypeInvalid")]
    causes = check_name("") if not name else check_rbac_name(name, "metadata.name")
    causes += type_causes(meta, {"finalizers": list, "generateName": str, "namespace": str}, "metadata.")
    causes += check_labels(meta.get("labels"), "metadata.labels")
    causes += check_map_of_strings(meta.get("annotations"), "metadata.annotations")
    causes += check_owner_references(meta.get("ownerReferences"))
    return causes


def _strings_causes(rule: Obj, where: str) -> list[Cause]:
    causes = []
    for key in ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"):
        value = rule.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            causes.append(
                Cause(f"{where}.{key}", "Invalid value: must be a list of strings", "FieldValueTypeInvalid")
            )
    return causes


def check_rule(rule: Any, where: str, namespaced: bool) -> list[Cause]:
    """Upstream ValidatePolicyRule."""
    if not isinstance(rule, dict):
        return [Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = _strings_causes(rule, where)
    if causes:
        return causes
    if not rule.get("verbs"):
        causes.append(
            Cause(
                f"{where}.verbs",
                "Required value: verbs must contain at least one value",
                "FieldValueRequired",
            )
        )
    urls = rule.get("nonResourceURLs") or []
    if urls:
        shown = go_strings(urls)
        if namespaced:
            message = f"Invalid value: {shown}: namespaced rules cannot apply to non-resource URLs"
            causes.append(Cause(f"{where}.nonResourceURLs", message))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            message = (
                f"Invalid value: {shown}: rules cannot apply to both regular resources and non-resource URLs"
            )
            causes.append(Cause(f"{where}.nonResourceURLs", message))
        return causes
    if not rule.get("apiGroups"):
        message = "Required value: resource rules must supply at least one api group"
        causes.append(Cause(f"{where}.apiGroups", message, "FieldValueRequired"))
    if not rule.get("resources"):
        message = "Required value: resource rules must supply at least one resource"
        causes.append(Cause(f"{where}.resources", message, "FieldValueRequired"))
    return causes


def check_rules(role: Obj, namespaced: bool) -> list[Cause]:
    """Every rule of a Role (namespaced) or ClusterRole."""
    rules = role.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [Cause("rules", "Invalid value: must be a list", "FieldValueTypeInvalid")]
    return [
        cause for index, rule in enumerate(rules) for cause in check_rule(rule, f"rules[{index}]", namespaced)
    ]


# -- bindings ---------------------------------------------------------------------------------------


def default_binding(binding: Obj) -> None:
    """Upstream SetDefaults_RoleBinding and SetDefaults_Subject: the RBAC group where it is implied."""
    ref = binding.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    subjects = binding.get("subjects")
    for subject in subjects if isinstance(subjects, list) else []:
        if (
            isinstance(subject, dict)
            and not subject.get("apiGroup")
            and subject.get("kind") in ("User", "Group")
        ):
            subject["apiGroup"] = GROUP


def _not_supported(path: str, value: Any, supported: tuple[str, ...]) -> Cause:
    listed_values = ", ".join(f'"{v}"' for v in supported)
    return Cause(
        path, f'Unsupported value: "{value}": supported values: {listed_values}', "FieldValueNotSupported"
    )


def check_subject(subject: Any, where: str, namespaced: bool) -> list[Cause]:
    """Upstream ValidateRoleBindingSubject (a ClusterRoleBinding's ServiceAccount names its namespace)."""
    if not isinstance(subject, dict):
        return [Cause(where, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(subject, {"kind": str, "apiGroup": str, "name": str, "namespace": str}, f"{where}.")
    if causes:
        return causes
    name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        causes.append(Cause(f"{where}.name", "Required value", "FieldValueRequired"))
    if kind == "ServiceAccount":
        if name:
            causes += check_name(name, path=f"{where}.name")
        if group:
            causes.append(_not_supported(f"{where}.apiGroup", group, ("",)))
        if not namespaced and not subject.get("namespace"):
            causes.append(Cause(f"{where}.namespace", "Required value", "FieldValueRequired"))
    elif kind in ("User", "Group"):
        if group != GROUP:
            causes.append(_not_supported(f"{where}.apiGroup", group, (GROUP,)))
    else:
        causes.append(_not_supported(f"{where}.kind", kind, SUBJECT_KINDS))
    return causes


def check_binding(binding: Obj, ref_kinds: tuple[str, ...], namespaced: bool) -> list[Cause]:
    """Upstream ValidateRoleBinding / ValidateClusterRoleBinding: the reference and every subject."""
    causes = check_rbac_metadata(binding)
    shape = type_causes(binding, {"roleRef": dict, "subjects": list})
    if shape:
        return causes + shape
    ref = as_dict(binding.get("roleRef"))
    shape = type_causes(ref, {"apiGroup": str, "kind": str, "name": str}, "roleRef.")
    if shape:
        return causes + shape
    if ref.get("apiGroup") != GROUP:
        causes.append(_not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), (GROUP,)))
    if ref.get("kind") not in ref_kinds:
        causes.append(_not_supported("roleRef.kind", ref.get("kind", ""), ref_kinds))
    name = ref.get("name") or ""
    if not name:
        causes.append(Cause("roleRef.name", "Required value", "FieldValueRequired"))
    else:
        causes += check_rbac_name(name, "roleRef.name")
    for index, subject in enumerate(binding.get("subjects") or []):
        causes += check_subject(subject, f"subjects[{index}]", namespaced)
    return causes


def role_ref_text(ref: Any) -> str:
    """Go's ``%#v`` of an rbac.RoleRef, as upstream shows it in ``cannot change roleRef``."""
    ref = as_dict(ref)
    fields = ", ".join(f"{key}:{json.dumps(str(ref.get(field) or ''))}" for key, field in _REF_FIELDS)
    return f"rbac.RoleRef{{{fields}}}"


def check_binding_update(new: Obj, old: Obj) -> list[Cause]:
    """Upstream ValidateRoleBindingUpdate: the role a binding grants never changes (delete and
    create a new binding instead, as ``kubectl auth reconcile`` does)."""
    if as_dict(new.get("roleRef")) == as_dict(old.get("roleRef")):
        return []
    return [Cause("roleRef", f"Invalid value: {role_ref_text(new.get('roleRef'))}: cannot change roleRef")]


def subjects_strings(binding: Obj) -> tuple[str, str, str]:
    """Upstream SubjectsStrings joined: users, groups, service accounts (``namespace/name``)."""
    users: list[str] = []
    groups: list[str] = []
    accounts: list[str] = []
    subjects = binding.get("subjects")
    for subject in subjects if isinstance(subjects, list) else []:
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), str(subject.get("name", ""))
        if kind == "User":
            users.append(name)
        elif kind == "Group":
            groups.append(name)
        elif kind == "ServiceAccount":
            accounts.append(f"{subject.get('namespace', '')}/{name}")
    return ", ".join(users), ", ".join(groups), ", ".join(accounts)


def binding_columns(what: str) -> tuple[Column, ...]:
    """printRoleBinding's columns (``what``: roleBinding or clusterRoleBinding, as upstream words them)."""
    return (
        NAME,
        Column(
            "Role",
            "string",
            0,
            "RoleRef can reference a Role in the current namespace or a ClusterRole in the "
            "global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
        ),
        AGE,
        Column("Users", "string", 1, f"Users in the {what}"),
        Column("Groups", "string", 1, f"Groups in the {what}"),
        Column("ServiceAccounts", "string", 1, f"ServiceAccounts in the {what}"),
    )


def binding_row(binding: Obj) -> list[Any]:
    """printRoleBinding: name, ``Kind/name`` of the role, age, then the wide subject columns."""
    ref = as_dict(binding.get("roleRef"))
    return [
        binding["metadata"]["name"],
        f"{ref.get('kind', '')}/{ref.get('name', '')}",
        created(binding),
        *subjects_strings(binding),
    ]


ROLE_COLUMNS = (
    NAME,
    Column(
        "Created At",
        "date",
        0,
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
)


def role_row(role: Obj) -> list[Any]:
    """printRole / printClusterRole: the name and the creation time (RFC 3339, UTC)."""
    return [role["metadata"]["name"], str(role["metadata"].get("creationTimestamp") or "")]
