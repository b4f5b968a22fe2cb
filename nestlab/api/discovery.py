"""Discovery documents: what kubectl reads before anything else to map ``pods``/``po`` to a URL.

Only the legacy (unaggregated) documents are served; kubectl 1.26+ asks for aggregated discovery
first and falls back to these when the answer is a plain APIGroupList, which is what upstream
servers before 1.26 did.
"""

from __future__ import annotations

from typing import Any

from nestlab.api import resources
from nestlab.api.resources import Resource

Obj = dict[str, Any]
# The Kubernetes version whose API conventions this server follows (and that kubectl's version
# skew check compares against).
MAJOR, MINOR = "1", "30"
GIT_VERSION = f"v{MAJOR}.{MINOR}.0-nestlab"

_SUBRESOURCE_VERBS: dict[str, list[str]] = {
    "status": ["get", "patch", "update"],
    "binding": ["create"],
    "log": ["get"],
    "eviction": ["create"],
    "scale": ["get", "patch", "update"],
    "exec": ["create", "get"],
    "attach": ["create", "get"],
    "portforward": ["create", "get"],
    "token": ["create"],
}


_SUBRESOURCE_KINDS = {
    "binding": "Binding",
    "log": "Pod",
    "scale": "Scale",
    "eviction": "Eviction",
    "exec": "PodExecOptions",
    "attach": "PodAttachOptions",
    "portforward": "PodPortForwardOptions",
    "token": "TokenRequest",
}
_SUBRESOURCE_GROUPS = {
    "scale": ("autoscaling", "v1"),
    "eviction": ("policy", "v1"),
    "token": ("authentication.k8s.io", "v1"),
}


def version() -> Obj:
    """The /version document."""
    return {
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "nestlab",
        "gitTreeState": "clean",
        "buildDate": "2026-11-21T00:00:00Z",
        "goVersion": "python",
        "compiler": "cpython",
        "platform": "linux/amd64",
    }


def api_versions(server_address: str) -> Obj:
    """/api: the core group's versions."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def _group(name: str, versions: list[str]) -> Obj:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_groups() -> Obj:
    """/apis: every named group."""
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(name, versions) for name, versions in sorted(resources.groups().items())],
    }


def api_group(name: str) -> Obj | None:
    """/apis/<group>, or None when the group is not served."""
    versions = resources.groups().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _entries(resource: Resource) -> list[Obj]:
    entry: Obj = {
        "name": resource.plural,
        "singularName": resource.singular,
        "namespaced": resource.namespaced,
        "kind": resource.kind,
        "verbs": list(resource.verbs),
    }
    if resource.short_names:
        entry["shortNames"] = list(resource.short_names)
    if resource.categories:
        entry["categories"] = list(resource.categories)
    subs = []
    for sub in resource.subresources:
        item: Obj = {
            "name": f"{resource.plural}/{sub}",
            "singularName": "",
            "namespaced": resource.namespaced,
            "kind": _SUBRESOURCE_KINDS.get(sub, resource.kind),
            "verbs": _SUBRESOURCE_VERBS[sub],
        }
        if sub in _SUBRESOURCE_GROUPS:
            item["group"], item["version"] = _SUBRESOURCE_GROUPS[sub]
        subs.append(item)
    return [entry, *subs]


def resource_list(group: str, version: str) -> Obj | None:
    """/api/v1 or /apis/<group>/<version>: the resources served there, or None."""
    served = resources.in_group_version(group, version)
    if not served:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for resource in served for entry in _entries(resource)],
    }
