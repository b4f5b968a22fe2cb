"""Scheduler filters and score: readiness, taints, nodeSelector, resources, anti-affinity."""

from __future__ import annotations

from typing import Any

from nestlab.controller import placement


def node(
    name: str, *, ready: bool = True, cpu: str = "2", memory: str = "4Gi", pods: str = "10", **spec: Any
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, **spec.pop("labels", {})}
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
        },
    }


def pod(
    name: str, cpu: str = "500m", node_name: str = "", labels: dict[str, str] | None = None, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "128Mi"}}}
        ],
        **spec,
    }
    if node_name:
        body["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": "demo", "labels": labels or {}},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def anti_affinity(app: str) -> dict[str, Any]:
    term = {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}


def test_least_loaded_ready_node_wins() -> None:
    nodes = [node("esx-01"), node("esx-02"), node("esx-03", ready=False)]
    placed = [pod("busy", node_name="esx-01")]
    assert placement.choose(pod("new"), nodes, placed).node == "esx-02"


def test_ties_break_by_name() -> None:
    assert placement.choose(pod("new"), [node("esx-02"), node("esx-01")], []).node == "esx-01"


def test_taints_need_tolerations() -> None:
    tainted = node("esx-01", taints=[{"key": "maintenance", "value": "true", "effect": "NoSchedule"}])
    cordoned = node("esx-02", unschedulable=True)
    decision = placement.choose(pod("new"), [tainted, cordoned], [])
    assert decision.node is None
    assert decision.message == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {maintenance: true}, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unschedulable: }."
    )
    tolerant = pod("ok", tolerations=[{"key": "maintenance", "operator": "Exists", "effect": "NoSchedule"}])
    assert placement.choose(tolerant, [tainted, cordoned], []).node == "esx-01"
    prefer = node("esx-03", taints=[{"key": "soft", "effect": "PreferNoSchedule"}])
    assert placement.choose(pod("new"), [prefer], []).node == "esx-03"


def test_node_selector() -> None:
    nodes = [node("esx-01"), node("esx-02", labels={"disk": "ssd"})]
    assert placement.choose(pod("new", nodeSelector={"disk": "ssd"}), nodes, []).node == "esx-02"
    decision = placement.choose(pod("new", nodeSelector={"disk": "nvme"}), nodes, [])
    assert decision.message == "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."


def test_resources_and_pod_count_must_fit() -> None:
    nodes = [node("esx-01", cpu="1"), node("esx-02", pods="1")]
    placed = [pod("a", cpu="800m", node_name="esx-01"), pod("b", cpu="0", node_name="esx-02")]
    decision = placement.choose(pod("new", cpu="500m"), nodes, placed)
    assert decision.message == "0/2 nodes are available: 1 Insufficient cpu, 1 Too many pods."
    finished = [{**placed[0], "status": {"phase": "Succeeded"}}, placed[1]]
    assert placement.choose(pod("new", cpu="500m"), nodes, finished).node == "esx-01"


def test_required_anti_affinity_both_directions() -> None:
    nodes = [node("esx-01"), node("esx-02")]
    first = pod("web-1", node_name="esx-01", labels={"app": "web"}, affinity=anti_affinity("web"))
    second = pod("web-2", labels={"app": "web"}, affinity=anti_affinity("web"))
    assert placement.choose(second, nodes, [first]).node == "esx-02"
    third = pod("web-3", labels={"app": "web"}, affinity=anti_affinity("web"))
    decision = placement.choose(
        third, nodes, [first, {**second, "spec": {**second["spec"], "nodeName": "esx-02"}}]
    )
    assert decision.message == "0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules."
    plain = pod("plain", labels={"app": "web"})  # no rule of its own, but web-1's rule repels it
    assert placement.choose(plain, [node("esx-01")], [first]).node is None
    other_namespace = {
        **pod("x", labels={"app": "web"}),
        "metadata": {"name": "x", "namespace": "other", "labels": {"app": "web"}},
    }
    assert placement.choose(other_namespace, [node("esx-01")], [first]).node == "esx-01"


def test_selector_expressions() -> None:
    labels = {"app": "web", "tier": "front"}
    match = placement.selector_matches
    assert match({"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "api"]}]}, labels)
    assert not match(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels
    )
    assert match({"matchExpressions": [{"key": "x", "operator": "DoesNotExist"}]}, labels)
    assert not match({"matchExpressions": [{"key": "x", "operator": "Exists"}]}, labels)
    assert not match(None, labels)
