"""The ClusterRole ``system:nestlab-controller`` covers every API call nestlab-controller's code makes.

The controller's sources are parsed (the DNS feed has its own identity since issue 14: see
test_dns_role.py, which reuses this scan); every
``client.<verb>(RESOURCE, ...)``, ``client.request(METHOD, path_of(RESOURCE, ..., sub))``,
``client.bind`` and ``informers.informer(RESOURCE)`` becomes an authorizer question that the
built-in role must answer "yes". A controller that starts calling something new fails here before
it meets a 403 on a lab.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from nestlab.api import bootstraproles, rbacrules
from nestlab.api import resources as r
from nestlab.api.kinds.base import Resource
from nestlab.api.rbacrules import Attributes
from nestlab.controller import gc
from nestlab.controller.replicaset import ReplicaSetController, ReplicationManager

ROOT = Path(__file__).resolve().parents[3] / "nestlab"
SOURCES = sorted((ROOT / "controller").glob("*.py"))
CLIENT_VERBS = {
    "create": ("create",),
    "delete": ("delete",),
    "patch": ("patch",),
    "replace": ("update",),
    "get": ("get",),
    "list": ("list",),
    "watch": ("watch",),
}
METHODS = {"GET": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
Call = tuple[str, str, str, str]  # (verb, plural, subresource, where)


def _resource(node: ast.expr) -> Resource | None:
    found = getattr(r, node.id, None) if isinstance(node, ast.Name) else None
    return found if isinstance(found, Resource) else None


def _receiver_is_client(func: ast.Attribute) -> bool:
    value = func.value
    name = value.attr if isinstance(value, ast.Attribute) else value.id if isinstance(value, ast.Name) else ""
    return name == "client"


def _status_arg(call: ast.Call) -> str:
    strings = [a.value for a in call.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    return "status" if "status" in strings else ""


def calls_in(path: Path) -> list[tuple[str, Resource, str, str]]:
    """(verb, resource, subresource, file:line) of each API call with a static resource in ``path``."""
    out: list[tuple[str, Resource, str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or not node.args:
            continue
        where, method = f"{path.name}:{node.lineno}", node.func.attr
        if method == "informer":
            resource = _resource(node.args[0])
            out += [(verb, resource, "", where) for verb in ("list", "watch") if resource is not None]
        elif method == "request" and _receiver_is_client(node.func) and len(node.args) >= 2:
            verb_node, target = node.args[0], node.args[1]
            if isinstance(verb_node, ast.Constant) and isinstance(target, ast.Call) and target.args:
                resource = _resource(target.args[0])
                sub = target.args[3] if len(target.args) > 3 else None
                subresource = (
                    sub.value if isinstance(sub, ast.Constant) and isinstance(sub.value, str) else ""
                )
                if resource is not None:
                    out.append((METHODS[str(verb_node.value)], resource, subresource, where))
        elif method in CLIENT_VERBS and _receiver_is_client(node.func):
            resource = _resource(node.args[0])
            subresource = _status_arg(node) if method in ("patch", "replace") else ""
            out += [
                (verb, resource, subresource, where) for verb in CLIENT_VERBS[method] if resource is not None
            ]
    return out


def _allowed(verb: str, resource: Resource, subresource: str = "") -> bool:
    asked = Attributes(verb, resource.group, resource.plural, subresource, "x", "ns")
    return rbacrules.allows(bootstraproles.controller_rules(), asked)


def test_the_scan_sees_the_controller_calls() -> None:
    found = {(verb, res.plural, sub) for path in SOURCES for verb, res, sub, _ in calls_in(path)}
    assert ("create", "pods", "") in found  # the scan works: these calls exist today
    assert ("patch", "pods", "status") in found
    assert ("update", "clusterroles", "") in found
    assert len(found) > 40


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_call_is_allowed(path: Path) -> None:
    refused = [
        f"{where}: {verb} {res.plural}{'/' + sub if sub else ''}"
        for verb, res, sub, where in calls_in(path)
        if not _allowed(verb, res, sub)
    ]
    assert refused == []


def test_dynamic_calls_are_allowed() -> None:
    """Calls whose resource is a variable: the garbage collector over the kinds it monitors, the
    ReplicaSet controller over ReplicaSets and ReplicationControllers, the scheduler's binding."""
    for resource in gc.MONITORED:
        for verb in ("get", "list", "watch", "patch", "delete"):
            assert _allowed(verb, resource), (verb, resource.plural)
    for factory in (ReplicaSetController, ReplicationManager):
        resource = factory.resource
        assert _allowed("patch", resource, "status")
    assert _allowed("create", r.PODS, "binding")
    assert _allowed("get", r.DAEMONSETS)  # an owner the garbage collector does not watch
    assert _allowed("escalate", r.CLUSTERROLES)


def test_nothing_beyond_what_it_uses() -> None:
    """Least privilege: no Secret, no RBAC binding, no write of what only people write."""
    assert not _allowed("get", r.SECRETS)
    assert not _allowed("list", r.SECRETS)
    assert not _allowed("create", r.CLUSTERROLEBINDINGS)
    assert not _allowed("bind", r.CLUSTERROLES)
    assert not _allowed("create", r.DEPLOYMENTS)
    assert not _allowed("delete", r.NAMESPACES)
    assert not _allowed("create", r.SERVICEACCOUNTS, "token")


def test_bound_to_its_user_only() -> None:
    (binding,) = [
        b
        for b in bootstraproles.cluster_role_bindings()
        if b["metadata"]["name"] == bootstraproles.CONTROLLER
    ]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:nestlab-controller"}
    ]
    assert binding["roleRef"]["name"] == "system:nestlab-controller"
