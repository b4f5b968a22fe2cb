"""Defaulting and validation of stored objects, reported as upstream-shaped field causes.

Only what the lab's users and components rely on is checked, but what is checked matches
Kubernetes: DNS-1123 names, containers with name and image, parseable resource quantities, pod
spec immutability, RoleBindings only to the ClusterRoles the authorizer knows.
"""

from __future__ import annotations

import re
from typing import Any

from nestlab.api import quantity
from nestlab.api.resources import Resource
from nestlab.api.shapes import (
    as_dict,
    as_list,
    check_affinity,
    check_lease,
    check_node,
    check_status,
    quantities,
    type_causes,
)
from nestlab.api.status import Cause

Obj = dict[str, Any]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
    "and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must "
    "start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
CLUSTER_ROLES = ("view", "edit", "admin")
# Kinds whose names are DNS-1123 labels (63 chars); the rest are subdomains (253 chars).
_LABEL_NAMED = ("Namespace",)
_RESTART_POLICIES = ("Always", "OnFailure", "Never")
_MUTABLE_POD_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def check_name(name: str, kind: str, path: str = "metadata.name") -> list[Cause]:
    """Causes for a bad object name (empty list when the name is valid)."""
    if not name:
        return [Cause(path, "Required value: name or generateName is required", "FieldValueRequired")]
    label = kind in _LABEL_NAMED
    limit, pattern, rule = (
        (63, _DNS1123_LABEL, LABEL_MSG) if label else (253, _DNS1123_SUBDOMAIN, SUBDOMAIN_MSG)
    )
    if len(name) > limit:
        return [Cause(path, f'Invalid value: "{name}": must be no more than {limit} characters')]
    if not pattern.match(name):
        return [Cause(path, f'Invalid value: "{name}": {rule}')]
    return []


def _check_map_of_strings(value: Any, path: str) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [
            Cause(
                path, "Invalid value: must be a map of string keys to string values", "FieldValueTypeInvalid"
            )
        ]
    return []


def check_metadata(obj: Obj, resource: Resource) -> list[Cause]:
    """Causes common to every kind: name, labels, annotations."""
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return [Cause("metadata", "Required value: metadata is required", "FieldValueRequired")]
    if not isinstance(meta.get("name", ""), str):
        return [Cause("metadata.name", "Invalid value: must be a string", "FieldValueTypeInvalid")]
    causes = check_name(str(meta.get("name", "")), resource.kind)
    causes += type_causes(meta, {"finalizers": list, "generateName": str, "namespace": str}, "metadata.")
    causes += _check_map_of_strings(meta.get("labels"), "metadata.labels")
    causes += _check_map_of_strings(meta.get("annotations"), "metadata.annotations")
    return causes


def _check_resources(requirements: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if requirements is None:
        return causes
    if not isinstance(requirements, dict):
        return [Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid")]
    causes = type_causes(requirements, {"requests": dict, "limits": dict}, f"{path}.")
    if causes:
        return causes
    for section in ("requests", "limits"):
        for name, value in (requirements.get(section) or {}).items():
            try:
                if quantity.parse(value) < 0:
                    causes.append(
                        Cause(
                            f"{path}.{section}[{name}]",
                            f'Invalid value: "{value}": must be greater than or equal to 0',
                        )
                    )
            except quantity.QuantityError as exc:
                causes.append(Cause(f"{path}.{section}[{name}]", f'Invalid value: "{value}": {exc}'))
    limits, requests = requirements.get("limits") or {}, requirements.get("requests") or {}
    for name, request in requests.items():
        try:
            if name in limits and quantity.parse(request) > quantity.parse(limits[name]):
                causes.append(
                    Cause(
                        f"{path}.requests[{name}]",
                        f'Invalid value: "{request}": must be less than or equal to {name} limit of '
                        f"{limits[name]}",
                    )
                )
        except quantity.QuantityError:
            continue  # already reported above
    return causes


def default_pod(pod: Obj) -> None:
    """Fill the defaults Kubernetes fills, so clients read back what they would upstream."""
    if not isinstance(pod.get("status"), dict):
        pod["status"] = {}
    if pod.get("spec") is None:
        pod["spec"] = {}
    spec = pod["spec"]
    if not isinstance(spec, dict):
        return  # validation reports it
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    for container in as_list(spec.get("containers")):
        if not isinstance(container, dict) or not isinstance(container.setdefault("resources", {}), dict):
            continue
        image = str(container.get("image", ""))
        latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        limits = as_dict(container["resources"].get("limits"))
        requests = container["resources"].setdefault("requests", {}) if limits else None
        for name, value in limits.items():
            if isinstance(requests, dict):
                requests.setdefault(name, value)
        for port in as_list(container.get("ports")):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
    status = pod["status"]
    status.setdefault("phase", "Pending")
    status.setdefault("qosClass", _qos_class(spec))


def _qos_class(spec: Obj) -> str:
    containers = [c for c in as_list(spec.get("containers")) if isinstance(c, dict)]
    resources = [as_dict(c.get("resources")) for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        set(as_dict(r.get("limits"))) >= {"cpu", "memory"}
        and as_dict(r.get("requests")) == as_dict(r.get("limits"))
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def check_pod(pod: Obj) -> list[Cause]:
    """Causes for a bad pod spec (after defaulting)."""
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return [Cause("spec", "Required value", "FieldValueRequired")]
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        return [Cause("spec.containers", "Required value", "FieldValueRequired")]
    causes = type_causes(
        spec,
        {"nodeSelector": dict, "tolerations": list, "affinity": dict, "volumes": list, "nodeName": str},
        "spec.",
    )
    causes += check_affinity(spec.get("affinity"))
    causes += [
        Cause(f"spec.tolerations[{i}]", "Invalid value: must be an object", "FieldValueTypeInvalid")
        for i, t in enumerate(as_list(spec.get("tolerations")))
        if not isinstance(t, dict)
    ]
    seen: set[str] = set()
    for index, container in enumerate(containers):
        path = f"spec.containers[{index}]"
        if not isinstance(container, dict):
            causes.append(Cause(path, "Invalid value: must be an object", "FieldValueTypeInvalid"))
            continue
        kinds = {"ports": list, "env": list, "command": list, "args": list, "image": str}
        causes += type_causes(container, kinds, f"{path}.")
        name = container.get("name")
        if not name:
            causes.append(Cause(f"{path}.name", "Required value", "FieldValueRequired"))
        elif not isinstance(name, str) or not _DNS1123_LABEL.match(name):
            causes.append(Cause(f"{path}.name", f'Invalid value: "{name}": {LABEL_MSG}'))
        elif name in seen:
            causes.append(Cause(f"{path}.name", f'Duplicate value: "{name}"', "FieldValueDuplicate"))
        else:
            seen.add(name)
        if not container.get("image"):
            causes.append(Cause(f"{path}.image", "Required value", "FieldValueRequired"))
        causes += _check_resources(container.get("resources"), f"{path}.resources")
    policy = spec.get("restartPolicy")
    if policy not in _RESTART_POLICIES:
        supported = ", ".join(f'"{p}"' for p in _RESTART_POLICIES)
        causes.append(
            Cause(
                "spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: {supported}',
                "FieldValueNotSupported",
            )
        )
    selector = spec.get("nodeSelector")
    causes += _check_map_of_strings(selector, "spec.nodeSelector")
    return causes


def check_pod_update(old: Obj, new: Obj) -> list[Cause]:
    """Pods are immutable but for images and a few scheduling fields, as upstream."""
    old_spec, new_spec = dict(as_dict(old.get("spec"))), dict(as_dict(new.get("spec")))
    for spec in (old_spec, new_spec):
        for key in _MUTABLE_POD_SPEC:
            spec.pop(key, None)
        spec["containers"] = [
            {**c, "image": ""} for c in as_list(spec.get("containers")) if isinstance(c, dict)
        ]
    if old_spec != new_spec:
        return [
            Cause(
                "spec",
                "Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) "
                "or `spec.terminationGracePeriodSeconds`",
                "FieldValueForbidden",
            )
        ]
    return []


def check_quota(quota: Obj) -> list[Cause]:
    """Causes for a bad ResourceQuota: every hard limit must be a quantity."""
    spec = quota.get("spec")
    if spec is not None and not isinstance(spec, dict):
        return [Cause("spec", "Invalid value: must be an object", "FieldValueTypeInvalid")]
    return quantities(as_dict(spec).get("hard"), "spec.hard")


def check_rolebinding(binding: Obj) -> list[Cause]:
    """RoleBindings may only grant the built-in ClusterRoles this server authorizes."""
    causes = type_causes(binding, {"roleRef": dict, "subjects": list})
    if causes:
        return causes
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


def check_event(event: Obj) -> list[Cause]:
    """Events must say what they are about."""
    if not isinstance(event.get("involvedObject"), dict):
        return [Cause("involvedObject", "Required value", "FieldValueRequired")]
    return []


def validate(obj: Obj, resource: Resource) -> list[Cause]:
    """Every cause against a new object of ``resource`` (defaulting already applied)."""
    causes = check_metadata(obj, resource) + check_status(obj, resource)
    checks = {
        "Node": check_node,
        "Lease": check_lease,
        "Pod": check_pod,
        "ResourceQuota": check_quota,
        "RoleBinding": check_rolebinding,
        "Event": check_event,
    }
    check = checks.get(resource.kind)
    if check is not None:
        causes += check(obj)
    return causes
