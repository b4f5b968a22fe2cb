"""Fixed API objects and lab facts the dashboard's unit tests build their views from."""

from __future__ import annotations

import json
from typing import Any

from nestlab.dashboard.model import LabFacts, Probe, SubstrateNode

Obj = dict[str, Any]


def node(
    name: str, ready: str = "True", *, unschedulable: bool = False, verdict: Obj | str | None = None
) -> Obj:
    annotations = {}
    if verdict is not None:
        annotations["trust.nestlab.dev/attestation"] = (
            verdict if isinstance(verdict, str) else json.dumps(verdict)
        )
    conditions = [{"type": "Ready", "status": ready, "reason": "KubeletReady"}]
    if isinstance(verdict, dict):
        passed = verdict.get("passed") is True
        conditions.append(
            {
                "type": "Attested",
                "status": str(passed),
                "reason": "AttestationPassed" if passed else "AttestationFailed",
            }
        )
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"unschedulable": True} if unschedulable else {},
        "status": {
            "conditions": conditions,
            "capacity": {"cpu": "2", "memory": "4096Mi"},
            "addresses": [{"type": "InternalIP", "address": f"198.18.100.{30 + int(name[-1])}"}],
        },
    }


def pod(
    namespace: str, name: str, node_name: str = "", phase: str = "Running", memory: str | None = None
) -> Obj:
    resources = {"limits": {"memory": memory}} if memory else {}
    return {
        "metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}"},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "image": "x", "resources": resources}]},
        "status": {"phase": phase, "conditions": [{"type": "Ready", "status": str(phase == "Running")}]},
    }


def started(namespace: str, pod_name: str, pid: int, when: str) -> Obj:
    return {
        "metadata": {"namespace": namespace, "name": f"{pod_name}.{pid}"},
        "involvedObject": {"kind": "Pod", "namespace": namespace, "name": pod_name, "uid": f"uid-{pod_name}"},
        "reason": "Started",
        "type": "Normal",
        "message": f"pod VM started (QEMU pid {pid})",
        "lastTimestamp": when,
        "count": 1,
    }


def quota(namespace: str, hard: Obj, used: Obj) -> Obj:
    return {
        "metadata": {"namespace": namespace, "name": "limits"},
        "spec": {"hard": hard},
        "status": {"hard": hard, "used": used},
    }


def snapshot() -> dict[str, list[Obj]]:
    """Three hosts: esx-01 fine with two pods, esx-02 attested FAILED and cordoned, esx-03 not responding."""
    return {
        "nodes": [
            node("esx-01", verdict={"passed": True, "time": "2026-12-06T02:00:00Z"}),
            node(
                "esx-02", unschedulable=True, verdict={"passed": False, "reasons": ["PCR 9 does not replay"]}
            ),
            node("esx-03", ready="Unknown"),
        ],
        "pods": [
            pod("team-a", "web", "esx-01", memory="256Mi"),
            pod("team-a", "db", "esx-01"),
            pod("team-a", "waiting", "", phase="Pending"),
        ],
        "namespaces": [
            {"metadata": {"name": "team-a"}, "status": {"phase": "Active"}},
            {"metadata": {"name": "empty"}, "status": {"phase": "Active"}},
        ],
        "resourcequotas": [
            quota("team-a", {"pods": "10", "limits.memory": "2Gi"}, {"pods": "3", "limits.memory": "1Gi"})
        ],
        "events": [
            started("team-a", "web", 1111, "2026-12-06T01:00:00Z"),
            started("team-a", "web", 2222, "2026-12-06T01:05:00Z"),
            started("team-a", "db", 3333, "2026-12-06T01:01:00Z"),
            {
                "metadata": {"namespace": "team-a", "name": "w1"},
                "involvedObject": {"kind": "Pod", "namespace": "team-a", "name": "waiting"},
                "reason": "FailedScheduling",
                "type": "Warning",
                "message": "0/3 nodes are available: <insufficient memory>",
                "lastTimestamp": "2026-12-06T01:10:00Z",
                "count": 4,
            },
        ],
        "leases": [
            {
                "metadata": {"namespace": "kube-node-lease", "name": "esx-01"},
                "spec": {"renewTime": "2026-12-06T02:00:01Z"},
            },
            {
                "metadata": {"namespace": "kube-system", "name": "nestlab-scheduler"},
                "spec": {"holderIdentity": "cp-1"},
            },
        ],
    }


def facts(esx03: str = "running") -> LabFacts:
    nodes = (
        SubstrateNode("esx-01", "host", "esx-01", "198.18.100.31", "running"),
        SubstrateNode("esx-02", "host", "esx-02", "198.18.100.32", "running"),
        SubstrateNode("esx-03", "host", "esx-03", "198.18.100.33", esx03),
        SubstrateNode("cp-1", "control-plane", "esx-01", "198.18.100.21", "running"),
        SubstrateNode("lb-1", "load-balancer", "esx-01", "198.18.100.11", "running"),
        SubstrateNode("cp-3", "control-plane", "esx-03", "198.18.100.23", esx03),
        SubstrateNode("depot", "depot", "esx-03", "198.18.100.10", esx03),
    )
    probes = (Probe("API via VIP", True, "ok"), Probe("cp-3 API server", False, "unreachable"))
    return LabFacts(
        "unit", "https://198.18.100.5:6443", nodes, probes, {"esx-01": "nestlab-pod-kernel 6.1+nl1"}
    )
