"""nestlab-dns's own identity (``system:nestlab-dns``): its built-in ClusterRole and kube-system Role
cover every API call the DNS feed's code makes, and nothing beyond (least privilege, issue 14.5).

The feed's sources are scanned as test_controller_role.py scans the controller's; each call is then
asked in ``kube-system`` (where presence.py keeps its Lease and the ``kube-dns`` Endpoints) against
the cluster-wide rules plus the Role's, and the whole chain is checked once more through the real
:class:`~nestlab.api.access.Authorizer` over a store holding the bootstrap objects.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nestlab.api import auth, bootstraproles, rbacrules
from nestlab.api import resources as r
from nestlab.api.access import Authorizer
from nestlab.api.kinds.base import Resource
from nestlab.api.rbacrules import Attributes
from nestlab.api.store import Store
from nestlab.dns import presence
from tests.unit.api.fake_etcd import FakeEtcd
from tests.unit.api.test_controller_role import ROOT, calls_in

SOURCES = sorted((ROOT / "dns").glob("*.py"))
DNS = auth.User("system:nestlab-dns", frozenset({"system:authenticated"}))
KUBE_SYSTEM = bootstraproles.DNS_NAMESPACE


def _allowed(verb: str, resource: Resource, namespace: str = KUBE_SYSTEM, name: str = "") -> bool:
    """Whether the cluster-wide rules, or in kube-system the Role's, allow the question."""
    asked = Attributes(verb, resource.group, resource.plural, "", name, namespace)
    rules = bootstraproles.dns_rules()
    if namespace == KUBE_SYSTEM:
        rules += bootstraproles.dns_namespace_rules()
    return rbacrules.allows(rules, asked)


def _name(resource: Resource, verb: str) -> str:
    """The object presence.py names in a call (a collection read names none)."""
    if verb in ("list", "watch", "create"):
        return ""
    return presence.SERVICE if resource is r.ENDPOINTS else presence.lease_name("cp-1")


def test_the_scan_sees_the_feeds_calls() -> None:
    found = {(verb, res.plural) for path in SOURCES for verb, res, _sub, _ in calls_in(path)}
    assert {("watch", "services"), ("list", "endpointslices"), ("update", "leases")} <= found
    assert ("update", "endpoints") in found  # Presence.reconcile's replace of kube-dns


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.name)
def test_every_call_is_allowed(path: Path) -> None:
    refused = [
        f"{where}: {verb} {res.plural}"
        for verb, res, _sub, where in calls_in(path)
        if not _allowed(verb, res, name=_name(res, verb))
    ]
    assert refused == []


def test_nothing_beyond_what_it_uses() -> None:
    assert _allowed("list", r.SERVICES, "team-a")
    assert _allowed("watch", r.ENDPOINTSLICES, "team-a")
    assert not _allowed("get", r.SECRETS)
    assert not _allowed("list", r.PODS, "team-a")
    assert not _allowed("create", r.PODS)
    assert not _allowed("update", r.SERVICES)
    assert not _allowed("create", r.ENDPOINTSLICES)
    assert not _allowed("create", r.NAMESPACES, "")
    assert not _allowed("create", r.LEASES, "default")  # its Leases live in kube-system only
    assert not _allowed("create", r.ENDPOINTS, "team-a")
    assert not _allowed("update", r.ENDPOINTS, name="kube-scheduler")  # kube-dns's only
    assert not _allowed("delete", r.ENDPOINTS, name="kube-dns")
    assert not _allowed("create", r.CLUSTERROLEBINDINGS, "")


def test_bound_to_its_user_only() -> None:
    wanted = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "system:nestlab-dns"}]
    (cluster,) = [b for b in bootstraproles.cluster_role_bindings() if b["metadata"]["name"] == DNS.name]
    (local,) = bootstraproles.namespace_role_bindings()
    assert cluster["subjects"] == local["subjects"] == wanted
    assert cluster["roleRef"] == {"apiGroup": rbacrules.GROUP, "kind": "ClusterRole", "name": DNS.name}
    assert local["roleRef"] == {"apiGroup": rbacrules.GROUP, "kind": "Role", "name": DNS.name}
    assert local["metadata"]["namespace"] == KUBE_SYSTEM


def test_the_authorizer_decides_with_the_bootstrap_objects() -> None:
    async def main() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        for resource, objects in (
            (r.CLUSTERROLES, bootstraproles.cluster_roles()),
            (r.CLUSTERROLEBINDINGS, bootstraproles.cluster_role_bindings()),
            (r.ROLES, bootstraproles.namespace_roles()),
            (r.ROLEBINDINGS, bootstraproles.namespace_role_bindings()),
        ):
            for obj in objects:
                await store.create(resource, str(obj["metadata"].get("namespace", "")), obj)
        authorizer = Authorizer(store)

        async def may(verb: str, resource: Resource, namespace: str, name: str = "") -> bool:
            return await authorizer.allowed(DNS, verb, resource, namespace=namespace, name=name)

        assert await may("watch", r.SERVICES, "")
        assert await may("list", r.ENDPOINTSLICES, "")
        assert await may("update", r.LEASES, KUBE_SYSTEM, "nestlab-dns-cp-1")
        assert await may("update", r.ENDPOINTS, KUBE_SYSTEM, "kube-dns")
        assert not await may("update", r.LEASES, "default", "nestlab-dns-cp-1")
        assert not await may("create", r.PODS, "default")
        assert not await may("get", r.SECRETS, KUBE_SYSTEM, "any")

    asyncio.run(main())
