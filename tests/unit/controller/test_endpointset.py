"""Which pods back a Service and the canonical Endpoints subsets (upstream endpoints controller rules)."""

from __future__ import annotations

import copy
from typing import Any

from nestlab.controller import endpointset as eps

Obj = dict[str, Any]


def service(
    ports: list[Obj] | None = None,
    selector: Obj | None = None,
    *,
    name: str = "web",
    cluster_ip: str = "198.18.32.20",
    **spec: Any,
) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "demo", "uid": "svc-uid", "labels": {"team": "a"}},
        "spec": {
            "selector": {"app": "web"} if selector is None else selector,
            "clusterIP": cluster_ip,
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}] if ports is None else ports,
            **spec,
        },
    }


def pod(
    name: str,
    ip: str = "",
    *,
    ready: bool = True,
    labels: Obj | None = None,
    ports: list[Obj] | None = None,
    deleting: bool = False,
    phase: str = "Running",
    **spec: Any,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "demo", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-12-05T12:00:00Z"
    return {
        "metadata": meta,
        "spec": {"nodeName": "esx-01", "containers": [{"name": "c", "ports": ports or []}], **spec},
        "status": {
            "phase": phase,
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def addr(name: str, ip: str, **extra: Any) -> Obj:
    return {
        "ip": ip,
        "nodeName": "esx-01",
        "targetRef": {"kind": "Pod", "namespace": "demo", "name": name, "uid": f"uid-{name}"},
        **extra,
    }


def test_managed_needs_a_selector_and_not_external_name() -> None:
    assert eps.is_managed(service())
    assert not eps.is_managed(service(selector={}))
    assert not eps.is_managed(service(type="ExternalName"))
    selectorless = service()
    del selectorless["spec"]["selector"]
    assert not eps.is_managed(selectorless)


def test_selection_by_labels_and_namespace() -> None:
    svc = service()
    assert eps.selects(svc, pod("a", "198.19.1.5"))
    assert not eps.selects(svc, pod("b", "198.19.1.6", labels={"app": "db"}))
    elsewhere = pod("c", "198.19.1.7")
    elsewhere["metadata"]["namespace"] = "other"
    assert not eps.selects(svc, elsewhere)


def test_ready_and_not_ready_addresses_sorted() -> None:
    pods = [pod("b", "198.19.1.9"), pod("a", "198.19.1.10"), pod("c", "198.19.1.2", ready=False)]
    assert eps.subsets_for(service(), pods) == [
        {
            "addresses": [addr("a", "198.19.1.10"), addr("b", "198.19.1.9")],
            "notReadyAddresses": [addr("c", "198.19.1.2")],
            "ports": [{"port": 8080, "protocol": "TCP"}],
        }
    ]


def test_pods_without_ip_finished_or_terminating_are_left_out() -> None:
    pods = [
        pod("noip"),
        pod("done", "198.19.1.3", phase="Succeeded"),
        pod("bye", "198.19.1.4", deleting=True),
        pod("ok", "198.19.1.5"),
    ]
    (subset,) = eps.subsets_for(service(), pods)
    assert [a["targetRef"]["name"] for a in subset["addresses"]] == ["ok"]
    assert "notReadyAddresses" not in subset


def test_publish_not_ready_addresses_counts_everyone_ready_terminating_included() -> None:
    pods = [pod("a", "198.19.1.5", ready=False), pod("b", "198.19.1.6", deleting=True)]
    (subset,) = eps.subsets_for(service(publishNotReadyAddresses=True), pods)
    assert [a["ip"] for a in subset["addresses"]] == ["198.19.1.5", "198.19.1.6"]
    assert "notReadyAddresses" not in subset


def test_named_target_port_resolves_per_pod_and_unresolved_pods_leave_that_port() -> None:
    svc = service(
        [
            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
            {"name": "metrics", "port": 9100, "targetPort": 9100, "protocol": "TCP"},
        ]
    )
    old = pod("old", "198.19.1.5", ports=[{"name": "web", "containerPort": 8080}])
    new = pod("new", "198.19.1.6", ports=[{"name": "web", "containerPort": 8081, "protocol": "TCP"}])
    bare = pod("bare", "198.19.1.7")  # no port named "web": only metrics
    udp = pod("udp", "198.19.1.8", ports=[{"name": "web", "containerPort": 53, "protocol": "UDP"}])
    subsets = eps.subsets_for(svc, [old, new, bare, udp])
    # upstream RepackSubsets groups by the addresses each port reaches: every pod serves metrics,
    # each resolution of "web" is its own subset, and pods where "web" does not resolve lack it
    by_ports = {tuple((p.get("name"), p["port"]) for p in s["ports"]): s for s in subsets}
    assert set(by_ports) == {(("metrics", 9100),), (("http", 8080),), (("http", 8081),)}
    ips = {k: [a["ip"] for a in s["addresses"]] for k, s in by_ports.items()}
    assert ips[(("metrics", 9100),)] == ["198.19.1.5", "198.19.1.6", "198.19.1.7", "198.19.1.8"]
    assert ips[(("http", 8080),)] == ["198.19.1.5"]
    assert ips[(("http", 8081),)] == ["198.19.1.6"]


def test_find_port_rules() -> None:
    web = pod("a", "198.19.1.5", ports=[{"name": "web", "containerPort": 8080}])
    assert eps.find_port(web, {"port": 80}) == 80  # no targetPort: the port itself
    assert eps.find_port(web, {"port": 80, "targetPort": 9000}) == 9000
    assert eps.find_port(web, {"port": 80, "targetPort": "web"}) == 8080
    assert eps.find_port(web, {"port": 80, "targetPort": "web", "protocol": "UDP"}) is None
    assert eps.find_port(web, {"port": 80, "targetPort": "nope"}) is None
    sidecar = pod("b", "198.19.1.6")
    sidecar["spec"]["initContainers"] = [
        {"name": "proxy", "restartPolicy": "Always", "ports": [{"name": "envoy", "containerPort": 15001}]}
    ]
    assert eps.find_port(sidecar, {"port": 80, "targetPort": "envoy"}) == 15001


def test_hostname_only_under_the_governing_service() -> None:
    svc = service(cluster_ip="None")
    member = pod("db-0", "198.19.1.5", hostname="db-0", subdomain="web")
    stranger = pod("db-1", "198.19.1.6", hostname="db-1", subdomain="other")
    (subset,) = eps.subsets_for(svc, [member, stranger])
    assert subset["addresses"][0]["hostname"] == "db-0"
    assert "hostname" not in subset["addresses"][1]


def test_headless_without_ports_lists_addresses_without_ports() -> None:
    assert eps.subsets_for(service([], cluster_ip="None"), [pod("a", "198.19.1.5")]) == [
        {"addresses": [addr("a", "198.19.1.5")]}
    ]
    assert eps.subsets_for(service([]), [pod("a", "198.19.1.5")]) == []


def test_repack_is_canonical_whatever_the_input_order() -> None:
    a, b = addr("a", "198.19.1.5"), addr("b", "198.19.1.6")
    http, dns = (
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
    )
    one = eps.repack([{"addresses": [b, a], "ports": [http, dns]}])
    other = eps.repack(
        [
            {"addresses": [a], "ports": [dns]},
            {"addresses": [b], "ports": [dns]},
            {"addresses": [a, b], "ports": [http]},
        ]
    )
    assert one == other == [{"addresses": [a, b], "ports": [dns, http]}]
    # listed ready and not ready for the same port: ready wins (upstream mapAddressByPort)
    both = eps.repack([{"notReadyAddresses": [a], "ports": [http]}, {"addresses": [a], "ports": [http]}])
    assert both == [{"addresses": [a], "ports": [http]}]


def test_desired_endpoints_none_when_unchanged_even_if_stored_differently() -> None:
    svc = service()
    pods = [pod("a", "198.19.1.5"), pod("b", "198.19.1.6", ready=False)]
    fresh = eps.desired_endpoints(svc, pods, None)
    assert fresh is not None
    assert fresh["metadata"] == {"name": "web", "namespace": "demo", "labels": {"team": "a"}}
    stored = copy.deepcopy(fresh)
    stored["metadata"].update(uid="ep-uid", resourceVersion="42")
    stored["subsets"][0]["addresses"][0]["hostname"] = ""  # the server may keep empty strings
    stored["subsets"] = list(reversed(stored["subsets"]))
    assert eps.desired_endpoints(svc, pods, stored) is None
    turned = eps.desired_endpoints(svc, [pod("a", "198.19.1.5"), pod("b", "198.19.1.6")], stored)
    assert turned is not None
    assert turned["metadata"]["resourceVersion"] == "42"  # a compare-and-swap on what was read
    assert [a["ip"] for a in turned["subsets"][0]["addresses"]] == ["198.19.1.5", "198.19.1.6"]


def test_headless_label() -> None:
    assert eps.endpoints_labels(service(cluster_ip="None")) == {"team": "a", eps.HEADLESS_LABEL: ""}
    labelled = service()
    labelled["metadata"]["labels"][eps.HEADLESS_LABEL] = ""
    assert eps.endpoints_labels(labelled) == {"team": "a"}


def test_fingerprint_ignores_what_endpoints_do_not_depend_on() -> None:
    before = pod("a", "198.19.1.5")
    after = copy.deepcopy(before)
    after["status"]["containerStatuses"] = [{"name": "c", "restartCount": 1}]
    assert eps.endpoint_fingerprint(before) == eps.endpoint_fingerprint(after)
    after["status"]["conditions"][0]["status"] = "False"
    assert eps.endpoint_fingerprint(before) != eps.endpoint_fingerprint(after)


def test_over_capacity_keeps_ready_addresses_first_and_marks_it() -> None:
    pods = [pod(f"r{i}", f"198.19.{i // 250}.{i % 250 + 1}") for i in range(900)]
    pods += [pod(f"n{i}", f"198.19.9.{i + 1}", ready=False) for i in range(200)]
    marked = eps.desired_endpoints(service(), pods, None)
    assert marked is not None
    assert marked["metadata"]["annotations"] == {eps.OVER_CAPACITY: "truncated"}
    (subset,) = marked["subsets"]
    assert (len(subset["addresses"]), len(subset["notReadyAddresses"])) == (900, 100)
    stored = copy.deepcopy(marked)
    stored["metadata"]["resourceVersion"] = "3"
    assert eps.desired_endpoints(service(), pods, stored) is None  # truncated and marked: no rewrite
    fewer = eps.desired_endpoints(service(), pods[:950], stored)
    assert fewer is not None
    assert fewer["metadata"]["annotations"] == {}
    # more ready addresses than the capacity: ready ones only, shared between subsets
    svc = service([{"name": "a", "port": 1, "targetPort": "a"}, {"name": "b", "port": 2, "targetPort": "b"}])
    many = [pod(f"a{i}", f"198.18.{i // 250}.{i % 250 + 1}", ports=[{"name": "a", "containerPort": 80}])
            for i in range(900)]  # fmt: skip
    many += [pod(f"b{i}", f"198.19.{i // 250}.{i % 250 + 1}", ports=[{"name": "b", "containerPort": 81}])
             for i in range(300)]  # fmt: skip
    subsets = eps.subsets_for(svc, many)
    assert eps.truncate(subsets)
    assert sorted(len(s["addresses"]) for s in subsets) == [250, 750]
