"""Scheduler filters on the node itself and the refusal message, table-driven; also the shared pod and
node builders. The filters that count pods already placed are in test_placement_topology.py."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nestlab.controller import placement

Obj = dict[str, Any]


def node(
    name: str,
    *,
    ready: str = "True",
    cpu: str = "2",
    memory: str = "4Gi",
    pods: str = "10",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> Obj:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": spec,
        "status": {
            "conditions": [{"type": "Ready", "status": ready}],
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
        },
    }


def pod(
    name: str,
    *,
    cpu: str | None = "500m",
    node_name: str = "",
    labels: dict[str, str] | None = None,
    namespace: str = "demo",
    memory: str | None = "128Mi",
    **spec: Any,
) -> Obj:
    wanted = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    body: Obj = {"containers": [{"name": "c", "image": "i", "resources": {"requests": wanted}}], **spec}
    if node_name:
        body["nodeName"] = node_name
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": body,
        "status": {"phase": "Pending"},
    }


def term(app: str, key: str = "kubernetes.io/hostname", **extra: Any) -> Obj:
    return {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key, **extra}


def anti_affinity(app: str) -> Obj:
    return {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term(app)]}}


def placed(p: Obj, node_name: str) -> Obj:
    return {**p, "spec": {**p["spec"], "nodeName": node_name}}


# the field names the scheduler reads inside affinity terms, spread constraints and tolerations
FIELDS = [
    "nodeAffinity", "podAffinity", "podAntiAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
    "preferredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms", "matchExpressions",
    "matchFields", "key", "operator", "values", "weight", "preference", "podAffinityTerm",
    "labelSelector", "matchLabels", "namespaces", "namespaceSelector", "topologyKey", "matchLabelKeys",
    "mismatchLabelKeys", "maxSkew", "whenUnsatisfiable", "minDomains", "nodeAffinityPolicy",
    "nodeTaintsPolicy", "effect", "value", "resources", "requests", "restartPolicy",
]  # fmt: skip
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"


def test_ties_break_by_name_and_not_ready_nodes_are_tainted() -> None:
    assert placement.choose(pod("new"), [node("esx-02"), node("esx-01")], []).node == "esx-01"
    nodes = [node("esx-01", ready="False"), node("esx-02", ready="Unknown")]
    assert placement.choose(pod("new"), nodes, []).message == (
        "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, "
        "1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. "
        f"preemption: 0/2 nodes are available: 2 {NOT_HELPFUL}."
    )


@pytest.mark.parametrize(
    ("taint", "tolerations", "fits"),
    [
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, [], False),
        ({"key": "k", "value": "v", "effect": "NoExecute"}, [], False),
        ({"key": "k", "value": "v", "effect": "PreferNoSchedule"}, [], True),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "operator": "Exists"}], True),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "value": "v"}], True),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"key": "k", "value": "w"}], False),
        ({"key": "k", "value": "v", "effect": "NoSchedule"}, [{"operator": "Exists"}], True),
        (
            {"key": "k", "effect": "NoSchedule"},
            [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
            False,
        ),
        (
            {"key": "k", "effect": "NoExecute"},
            [{"key": "k", "operator": "Exists", "effect": "NoExecute"}],
            True,
        ),
    ],
)
def test_taint_toleration(taint: Obj, tolerations: list[Obj], fits: bool) -> None:
    decision = placement.choose(pod("new", tolerations=tolerations), [node("esx-01", taints=[taint])], [])
    assert (decision.node == "esx-01") is fits
    if not fits:
        shown = f"{{{taint['key']}: {taint.get('value', '')}}}"
        assert decision.message.startswith(
            f"0/1 nodes are available: 1 node(s) had untolerated taint {shown}."
        )


def test_cordoned_node_is_unschedulable_unless_tolerated() -> None:
    nodes = [node("esx-01", unschedulable=True)]
    assert placement.choose(pod("new"), nodes, []).message == (
        f"0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: "
        f"1 {NOT_HELPFUL}."
    )
    tolerant = pod("new", tolerations=[{"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}])
    assert placement.choose(tolerant, nodes, []).node == "esx-01"


def required_node_affinity(*terms: Obj) -> Obj:
    return {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}}
    }


def expr(key: str, operator: str, *values: str) -> Obj:
    return {"matchExpressions": [{"key": key, "operator": operator, "values": list(values)}]}


@pytest.mark.parametrize(
    ("affinity", "selector", "expected"),
    [
        (None, {"disk": "ssd"}, {"esx-02"}),
        (None, {"disk": "nvme"}, set()),
        (required_node_affinity(expr("disk", "In", "ssd", "nvme")), None, {"esx-02"}),
        (required_node_affinity(expr("disk", "NotIn", "ssd")), None, {"esx-01", "esx-03"}),
        (required_node_affinity(expr("disk", "Exists")), None, {"esx-02", "esx-03"}),
        (required_node_affinity(expr("disk", "DoesNotExist")), None, {"esx-01"}),
        (required_node_affinity(expr("cores", "Gt", "8")), None, {"esx-03"}),
        (required_node_affinity(expr("cores", "Lt", "16")), None, {"esx-02"}),
        (required_node_affinity(expr("disk", "Gt", "1")), None, set()),  # not a number: no match
        (
            required_node_affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["esx-01"]}]}
            ),
            None,
            {"esx-01"},
        ),
        (
            required_node_affinity(
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["esx-01"]}]}
            ),
            None,
            {"esx-02", "esx-03"},
        ),
        (
            required_node_affinity(expr("disk", "In", "ssd"), expr("disk", "In", "hdd")),
            None,
            {"esx-02", "esx-03"},
        ),
        (required_node_affinity({}), None, set()),  # an empty term matches nothing
        (required_node_affinity(expr("disk", "Exists")), {"disk": "hdd"}, {"esx-03"}),  # both must hold
    ],
)
def test_node_selector_and_required_node_affinity(
    affinity: Obj | None, selector: Obj | None, expected: set[str]
) -> None:
    nodes = [
        node("esx-01"),
        node("esx-02", labels={"disk": "ssd", "cores": "8"}),
        node("esx-03", labels={"disk": "hdd", "cores": "32"}),
    ]
    spec: Obj = {k: v for k, v in (("affinity", affinity), ("nodeSelector", selector)) if v is not None}
    fitting = set()
    for candidate in nodes:
        decision = placement.choose(pod("new", **spec), [candidate], [])
        if decision.node:
            fitting.add(decision.node)
        else:
            assert len(decision.reasons) == 1
            assert set(decision.reasons) <= {placement.NODE_AFFINITY, placement.NOT_NAMED}
    assert fitting == expected


def test_nodes_named_by_match_fields_are_the_only_candidates() -> None:
    nodes = [
        node("esx-01"),
        node("esx-02", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
        node("esx-03"),
    ]
    names = {"key": "metadata.name", "operator": "In", "values": ["esx-02"]}
    decision = placement.choose(
        pod("new", affinity=required_node_affinity({"matchFields": [names]})), nodes, []
    )
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {k: v}, "
        "2 node(s) didn't satisfy plugin(s) [NodeAffinity]. "
        f"preemption: 0/3 nodes are available: 3 {NOT_HELPFUL}."
    )
    other = {"key": "metadata.name", "operator": "In", "values": ["esx-01"]}
    conflict = required_node_affinity({"matchFields": [names, other]})
    assert placement.choose(pod("new", affinity=conflict), nodes, []).message == (
        f"0/3 nodes are available: pod affinity terms conflict. preemption: 0/3 nodes are available: 3 {NOT_HELPFUL}."
    )
    either = required_node_affinity({"matchFields": [other]}, expr("disk", "Exists"))
    assert placement.choose(pod("new", affinity=either), nodes, []).node == "esx-01"  # a term without names


def test_resources_and_pod_count_must_fit() -> None:
    nodes = [node("esx-01", cpu="1"), node("esx-02", pods="1"), node("esx-03", cpu="1", memory="256Mi")]
    here = [pod("a", cpu="800m", node_name="esx-01"), pod("b", cpu="0", node_name="esx-02")]
    here.append(pod("c", cpu="800m", memory="200Mi", node_name="esx-03"))
    decision = placement.choose(pod("new", cpu="500m"), nodes, here)
    assert decision.message == (
        "0/3 nodes are available: 1 Insufficient memory, 1 Too many pods, 2 Insufficient cpu. "
        f"preemption: 0/3 nodes are available: 3 {NO_VICTIMS}."
    )
    finished = [{**here[0], "status": {"phase": "Succeeded"}}, *here[1:]]
    assert placement.choose(pod("new", cpu="500m"), nodes, finished).node == "esx-01"
    # a pod asking for more than the node has at all: preemption could never help
    assert placement.choose(pod("big", cpu="3"), [node("esx-01")], []).message.endswith(f"1 {NOT_HELPFUL}.")
    # a pod without requests fits wherever a pod slot is left (upstream skips cpu/memory then)
    assert placement.choose(pod("be", cpu=None, memory=None), nodes, here).node == "esx-01"


def test_preemption_policy_never() -> None:
    never = pod("new", cpu="3", preemptionPolicy="Never")
    assert placement.choose(never, [node("esx-01")], []).message == (
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    )
    assert placement.choose(pod("new"), [], []).message == "no nodes available to schedule pods"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [{"resources": {"requests": {"cpu": "250m", "memory": "1Mi"}}}] * 2}, (500, 2 << 20)),
        ({"containers": [{}]}, (0, 0)),
        (
            {
                "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
                "initContainers": [{"resources": {"requests": {"cpu": "1"}}}],
            },
            (1000, 0),
        ),
        (
            {
                "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
                "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "200m"}}}],
                "overhead": {"cpu": "50m"},
            },
            (350, 0),
        ),
    ],
)
def test_requests_add_up_like_upstream(spec: Obj, expected: tuple[int, int]) -> None:
    assert placement.requests({"metadata": {"name": "p"}, "spec": spec}) == expected


def test_nonzero_requests_count_best_effort_pods() -> None:
    best_effort = {
        "metadata": {"name": "p"},
        "spec": {"containers": [{}, {"resources": {"requests": {"cpu": "1"}}}]},
    }
    assert placement.requests(best_effort, nonzero=True) == (1100, 2 * 200 * 1024 * 1024)


def test_histogram_sorts_formatted_strings_like_upstream() -> None:
    reasons = {"Insufficient cpu": 2, "node(s) had untolerated taint {x: }": 1, "Too many pods": 10}
    assert placement.histogram(Counter(reasons)) == (
        "1 node(s) had untolerated taint {x: }, 10 Too many pods, 2 Insufficient cpu"
    )


def test_same_pass_replicas_spread_and_forget_undoes() -> None:
    nodes = [node("esx-01"), node("esx-02"), node("esx-03")]
    snapshot = placement.Snapshot(nodes, [])
    owner = [{"uid": "rs-1", "controller": True, "kind": "ReplicaSet", "name": "web"}]
    chosen = []
    for index in range(6):
        replica = pod(f"web-{index}", cpu=None, memory=None, labels={"app": "web"})
        replica["metadata"]["ownerReferences"] = owner
        decision = snapshot.choose(replica)
        assert decision.node is not None
        snapshot.assume(replica, decision.node)
        chosen.append(decision.node)
    assert chosen == ["esx-01", "esx-02", "esx-03"] * 2
    snapshot.forget({"metadata": {"name": "web-3", "namespace": "demo"}})
    assert snapshot.choose(pod("web-6", cpu=None, memory=None, labels={"app": "web"})).node == "esx-01"
    assert len(snapshot.nodes["esx-01"].pods) == 1


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["", "In", "zone", "Exists", "a"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    spec=st.dictionaries(
        st.sampled_from(
            ["affinity", "tolerations", "topologySpreadConstraints", "nodeSelector", "initContainers"]
        ),
        JSON,
    ),
    existing=st.dictionaries(st.sampled_from(["affinity", "topologySpreadConstraints"]), JSON),
)
def test_malformed_specs_never_break_a_pass(spec: Obj, existing: Obj) -> None:
    """Bad shapes are the API server's to refuse; here they read as absent, never as an exception."""
    other = pod("other", node_name="esx-01", labels={"app": "web"}, **existing)
    decision = placement.choose(
        pod("new", labels={"app": "web"}, **spec), [node("esx-01"), node("esx-02")], [other]
    )
    assert decision.node is not None or decision.message.startswith("0/2 nodes are available: ")
