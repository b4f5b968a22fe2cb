"""Unknown-field handling (``?fieldValidation=Strict|Warn|Ignore``), as the upstream decoder does it.

Kubernetes decodes bodies into typed structs, so a misspelt field (``spec.contianers``) is dropped,
warned about, or refused. kubectl 1.27+ relies on the server for this (it sends
``fieldValidation=Strict`` because our OpenAPI v3 document says PATCH accepts it), so the server
must really do it: the field lists below are the upstream v1 types' JSON names for the kinds
served here. Nested objects not listed (volumes, probes, affinity...) are kept as sent.
"""

from __future__ import annotations

from typing import Any

from nestlab.api import status
from nestlab.api.resources import Resource

Obj = dict[str, Any]
Shape = dict[str, Any]  # field -> nested Shape, ("list", Shape) for lists of objects, or None

_META: Shape = dict.fromkeys(
    [
        "name",
        "generateName",
        "namespace",
        "selfLink",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "labels",
        "annotations",
        "ownerReferences",
        "finalizers",
        "managedFields",
    ]
)
_CONTAINER: Shape = dict.fromkeys(
    [
        "name",
        "image",
        "command",
        "args",
        "workingDir",
        "ports",
        "envFrom",
        "env",
        "resources",
        "resizePolicy",
        "restartPolicy",
        "volumeMounts",
        "volumeDevices",
        "livenessProbe",
        "readinessProbe",
        "startupProbe",
        "lifecycle",
        "terminationMessagePath",
        "terminationMessagePolicy",
        "imagePullPolicy",
        "securityContext",
        "stdin",
        "stdinOnce",
        "tty",
    ]
)
_POD_SPEC: Shape = {
    **dict.fromkeys(
        [
            "volumes",
            "restartPolicy",
            "terminationGracePeriodSeconds",
            "activeDeadlineSeconds",
            "dnsPolicy",
            "nodeSelector",
            "serviceAccountName",
            "serviceAccount",
            "automountServiceAccountToken",
            "nodeName",
            "hostNetwork",
            "hostPID",
            "hostIPC",
            "shareProcessNamespace",
            "securityContext",
            "imagePullSecrets",
            "hostname",
            "subdomain",
            "affinity",
            "schedulerName",
            "tolerations",
            "hostAliases",
            "priorityClassName",
            "priority",
            "dnsConfig",
            "readinessGates",
            "runtimeClassName",
            "enableServiceLinks",
            "preemptionPolicy",
            "overhead",
            "topologySpreadConstraints",
            "setHostnameAsFQDN",
            "os",
            "hostUsers",
            "schedulingGates",
            "resourceClaims",
        ]
    ),
    "containers": ("list", _CONTAINER),
    "initContainers": ("list", _CONTAINER),
    "ephemeralContainers": None,
}
_TOP: dict[str, Shape] = {
    "Pod": {"spec": _POD_SPEC, "status": None},
    "Namespace": {"spec": None, "status": None},
    "Node": {"spec": None, "status": None},
    "ResourceQuota": {"spec": dict.fromkeys(["hard", "scopes", "scopeSelector"]), "status": None},
    "Event": dict.fromkeys(
        [
            "involvedObject",
            "reason",
            "message",
            "source",
            "firstTimestamp",
            "lastTimestamp",
            "count",
            "type",
            "eventTime",
            "series",
            "action",
            "related",
            "reportingComponent",
            "reportingInstance",
        ]
    ),
    "Lease": {
        "spec": dict.fromkeys(
            [
                "holderIdentity",
                "leaseDurationSeconds",
                "acquireTime",
                "renewTime",
                "leaseTransitions",
                "strategy",
                "preferredHolder",
            ]
        )
    },
    "RoleBinding": dict.fromkeys(["subjects", "roleRef"]),
}
MODES = ("Strict", "Warn", "Ignore")


def _prune(value: Any, shape: Shape, path: str, unknown: list[str]) -> None:
    if not isinstance(value, dict):
        return
    for key in list(value):
        if key.startswith("$"):
            continue  # strategic merge patch directives
        where = f"{path}.{key}" if path else key
        if key not in shape:
            unknown.append(where)
            del value[key]
            continue
        nested = shape[key]
        if isinstance(nested, tuple) and isinstance(value[key], list):
            for index, item in enumerate(value[key]):
                _prune(item, nested[1], f"{where}[{index}]", unknown)
        elif isinstance(nested, dict):
            _prune(value[key], nested, where, unknown)


def prune_unknown(obj: Any, resource: Resource) -> list[str]:
    """Remove fields the kind does not have from ``obj`` (in place); their paths."""
    unknown: list[str] = []
    shape: Shape = {"apiVersion": None, "kind": None, "metadata": _META, **_TOP.get(resource.kind, {})}
    if resource.kind in _TOP:
        _prune(obj, shape, "", unknown)
    return unknown


def enforce(obj: Any, resource: Resource, mode: str) -> list[str]:
    """Apply ``fieldValidation``: the warnings to send (Warn), or a 400 (Strict); unknown fields dropped."""
    mode = mode or "Warn"
    if mode not in MODES:
        raise status.bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", got "{mode}"')
    unknown = prune_unknown(obj, resource)
    if not unknown or mode == "Ignore":
        return []
    if mode == "Strict":
        listed = ", ".join(f'unknown field "{field}"' for field in unknown)
        raise status.bad_request(
            f'{resource.kind} in version "{resource.version}" cannot be handled as a {resource.kind}: '
            f"strict decoding error: {listed}"
        )
    return [f'unknown field "{field}"' for field in unknown]
