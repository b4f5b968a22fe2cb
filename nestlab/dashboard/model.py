"""The dashboard's views as plain rows, computed from API objects and the lab's facts: pure functions.

Inputs are what a store holds (``{"pods": [...], "nodes": [...], ...}``) and :class:`LabFacts`
(what only the outer machine knows: each node's power state, the API's health, each host's pod
kernel). Outputs are frozen dataclasses the templates print. Nothing here does I/O, so the unit
tests build every view from fixed objects.

Where a value comes from (so a learner can find it again with kubectl):
- a pod's QEMU pid: the agent's ``Started`` Event, "pod VM started (QEMU pid N)";
- its memory: the VM size the agent gives it (limits, else requests, else the default, plus the
  pod overhead: :func:`nestlab.runtime.qemu.size`);
- a host's attestation: the verifier's annotation ``trust.nestlab.dev/attestation`` and the Node
  condition ``Attested``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from nestlab.api import quantity
from nestlab.dashboard.rows import (
    EventRow,
    HostRow,
    Inventory,
    LabFacts,
    NamespaceRow,
    NamespaceView,
    PodRow,
    Probe,
    QuotaRow,
    SubstrateNode,
    Verdict,
)
from nestlab.runtime import qemu

__all__ = ["LabFacts", "Probe", "SubstrateNode", "host", "host_rows", "inventory", "namespace", "verdict"]

Obj = dict[str, Any]
Snapshot = Mapping[str, Sequence[Obj]]

ATTESTATION_ANNOTATION = "trust.nestlab.dev/attestation"
_QEMU_PID = re.compile(r"QEMU pid (\d+)")
_MIB = Decimal(2**20)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _condition(obj: Obj, kind: str) -> Obj:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def _mib(text: Any) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(quantity.parse(text) / _MIB)
    except (ValueError, ArithmeticError):
        return None


def _millis(text: Any) -> int | None:
    if text in (None, ""):
        return None
    try:
        return int(quantity.parse(text) * 1000)
    except (ValueError, ArithmeticError):
        return None


def vm_memory_mib(pod: Obj) -> int:
    """The pod VM's memory as the agent sizes it (tmpfs volumes aside)."""
    sizes = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        limits, requests = resources.get("limits") or {}, resources.get("requests") or {}
        sizes.append(
            qemu.ContainerResources(
                _millis(requests.get("cpu")),
                _millis(limits.get("cpu")),
                _mib(requests.get("memory")),
                _mib(limits.get("memory")),
            )
        )
    return qemu.size(sizes)[1]


def _event_time(event: Obj) -> str:
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event.get("firstTimestamp")
        or _meta(event).get("creationTimestamp")
        or ""
    )


def qemu_pids(events: Sequence[Obj]) -> dict[str, int]:
    """Pod uid (or ``namespace/name`` when the event has no uid) -> QEMU pid of its latest start."""
    pids: dict[str, tuple[str, int]] = {}
    for event in events:
        involved = event.get("involvedObject") or {}
        match = _QEMU_PID.search(str(event.get("message") or ""))
        if event.get("reason") != "Started" or involved.get("kind") != "Pod" or match is None:
            continue
        key = involved.get("uid") or f"{involved.get('namespace')}/{involved.get('name')}"
        when = _event_time(event)
        if key not in pids or pids[key][0] <= when:
            pids[key] = (when, int(match.group(1)))
    return {key: pid for key, (_, pid) in pids.items()}


def pod_row(pod: Obj, pids: Mapping[str, int], kernels: Mapping[str, str]) -> PodRow:
    """One pod microVM."""
    meta, spec, st = _meta(pod), pod.get("spec") or {}, pod.get("status") or {}
    node = str(spec.get("nodeName") or "")
    phase = str(st.get("phase") or "Pending")
    if meta.get("deletionTimestamp"):
        phase = "Terminating"
    key_uid, key_name = str(meta.get("uid") or ""), f"{meta.get('namespace')}/{meta.get('name')}"
    pid = pids.get(key_uid) or pids.get(key_name) if phase in ("Running", "Terminating") else None
    return PodRow(
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        node=node,
        phase=phase,
        ready=_condition(pod, "Ready").get("status") == "True",
        qemu_pid=pid,
        memory_mib=vm_memory_mib(pod),
        kernel=kernels.get(node, "") if node else "",
    )


def verdict(node: Obj) -> Verdict:
    """A host's last attestation verdict; a record that cannot be read is a failure (fail closed)."""
    name = str(_meta(node).get("name") or "")
    condition = _condition(node, "Attested")
    shown = f"{condition.get('status', '')} {condition.get('reason', '')}".strip()
    raw = (_meta(node).get("annotations") or {}).get(ATTESTATION_ANNOTATION)
    if raw is None:
        return Verdict(name, "not attested yet", "", (), shown)
    try:
        record = json.loads(raw)
    except json.JSONDecodeError:
        return Verdict(name, "FAILED", "", ("unreadable verdict record",), shown)
    if not isinstance(record, dict):
        return Verdict(name, "FAILED", "", ("unreadable verdict record",), shown)
    reasons = tuple(str(r) for r in record.get("reasons") or ())
    result = "passed" if record.get("passed") is True else "FAILED"
    if result == "FAILED" and not reasons:
        reasons = ("no reason recorded",)
    return Verdict(name, result, str(record.get("time") or ""), reasons, shown)


def _ready(node: Obj | None) -> str:
    if node is None:
        return "absent"
    status = _condition(node, "Ready").get("status")
    return {"True": "Ready", "False": "NotReady"}.get(str(status), "Unknown")


def _hosts_named(snapshot: Snapshot, facts: LabFacts) -> list[str]:
    names = {str(_meta(n).get("name")) for n in snapshot.get("nodes", ())}
    names |= {n.name for n in facts.nodes if n.role == "host"}
    return sorted(names)


def host_rows(snapshot: Snapshot, facts: LabFacts) -> list[HostRow]:
    """Every host (a Node, or a host node of the lab), with what runs on it."""
    nodes = {str(_meta(n).get("name")): n for n in snapshot.get("nodes", ())}
    power = {n.name: n for n in facts.nodes}
    leases = {
        str(_meta(lease).get("name")): str((lease.get("spec") or {}).get("renewTime") or "")
        for lease in snapshot.get("leases", ())
        if _meta(lease).get("namespace") == "kube-node-lease"
    }
    pids = qemu_pids(snapshot.get("events", ()))
    pods = [pod_row(p, pids, facts.kernels) for p in snapshot.get("pods", ())]
    rows = []
    for name in _hosts_named(snapshot, facts):
        node = nodes.get(name)
        capacity = ((node or {}).get("status") or {}).get("capacity") or {}
        substrate = power.get(name)
        rows.append(
            HostRow(
                name=name,
                power=substrate.state if substrate else "unknown",
                ready=_ready(node),
                schedulable=not ((node or {}).get("spec") or {}).get("unschedulable"),
                address=substrate.address if substrate else _address(node),
                cpu=str(capacity.get("cpu", "")),
                memory=str(capacity.get("memory", "")),
                heartbeat=leases.get(name, ""),
                infra=tuple(n for n in facts.nodes if n.placed_on == name and n.role != "host"),
                pods=tuple(p for p in pods if p.node == name),
                verdict=verdict(node) if node else Verdict(name, "not attested yet", "", (), ""),
            )
        )
    return rows


def _address(node: Obj | None) -> str:
    for address in ((node or {}).get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address") or "")
    return ""


def quota_rows(snapshot: Snapshot, namespace: str) -> list[QuotaRow]:
    """Each ResourceQuota's resources in ``namespace``: used of hard, and how full."""
    rows = []
    for quota in snapshot.get("resourcequotas", ()):
        if _meta(quota).get("namespace") != namespace:
            continue
        st = quota.get("status") or {}
        hard = st.get("hard") or (quota.get("spec") or {}).get("hard") or {}
        used = st.get("used") or {}
        for resource in sorted(hard):
            rows.append(
                QuotaRow(
                    str(_meta(quota).get("name")),
                    resource,
                    str(used.get(resource, "0")),
                    str(hard[resource]),
                    _percent(used.get(resource, "0"), hard[resource]),
                )
            )
    return rows


def _percent(used: Any, hard: Any) -> int | None:
    try:
        limit = quantity.parse(hard)
        return None if limit <= 0 else min(100, int(quantity.parse(used) * 100 / limit))
    except (ValueError, ArithmeticError):
        return None


def namespace_rows(snapshot: Snapshot) -> list[NamespaceRow]:
    """Every namespace this reader may see (also those it only knows from its pods)."""
    phases = {
        str(_meta(n).get("name")): str((n.get("status") or {}).get("phase") or "")
        for n in snapshot.get("namespaces", ())
    }
    pods: dict[str, list[Obj]] = {}
    for pod in snapshot.get("pods", ()):
        pods.setdefault(str(_meta(pod).get("namespace")), []).append(pod)
    rows = []
    for name in sorted(set(phases) | set(pods)):
        mine = pods.get(name, [])
        running = sum((p.get("status") or {}).get("phase") == "Running" for p in mine)
        rows.append(
            NamespaceRow(name, phases.get(name, ""), len(mine), running, tuple(quota_rows(snapshot, name)))
        )
    return rows


def event_rows(snapshot: Snapshot, namespace: str) -> list[EventRow]:
    """``namespace``'s events, newest first."""
    rows = []
    for event in snapshot.get("events", ()):
        if _meta(event).get("namespace") != namespace:
            continue
        involved = event.get("involvedObject") or {}
        rows.append(
            EventRow(
                str(event.get("type") or ""),
                str(event.get("reason") or ""),
                f"{str(involved.get('kind') or '').lower()}/{involved.get('name') or ''}",
                str(event.get("message") or ""),
                int(event.get("count") or 1),
                _event_time(event),
            )
        )
    return sorted(rows, key=lambda r: r.last, reverse=True)


def leaders(snapshot: Snapshot) -> list[tuple[str, str]]:
    """The kube-system Leases (leader election of the scheduler, controllers, DNS) and holders."""
    return [
        (str(_meta(lease).get("name")), str((lease.get("spec") or {}).get("holderIdentity") or ""))
        for lease in snapshot.get("leases", ())
        if _meta(lease).get("namespace") == "kube-system"
    ]


def inventory(snapshot: Snapshot, facts: LabFacts) -> Inventory:
    """The whole lab: hosts and what runs on each, namespaces, control-plane health."""
    hosts = host_rows(snapshot, facts)
    placed = {h.name for h in hosts}
    pids = qemu_pids(snapshot.get("events", ()))
    unplaced = tuple(
        pod_row(p, pids, facts.kernels)
        for p in snapshot.get("pods", ())
        if str((p.get("spec") or {}).get("nodeName") or "") not in placed
    )
    stray = tuple(n for n in facts.nodes if n.role != "host" and n.placed_on not in placed)
    return Inventory(
        facts.lab,
        tuple(hosts),
        unplaced,
        tuple(namespace_rows(snapshot)),
        facts.probes,
        tuple(leaders(snapshot)),
        stray,
    )


def host(snapshot: Snapshot, facts: LabFacts, name: str) -> HostRow | None:
    """One host, or None when the lab has no such host."""
    return next((h for h in host_rows(snapshot, facts) if h.name == name), None)


def namespace(snapshot: Snapshot, facts: LabFacts, name: str) -> NamespaceView:
    """One namespace: quota use, pods, events (empty rows when it is unknown or not readable)."""
    summary = next((n for n in namespace_rows(snapshot) if n.name == name), None)
    pids = qemu_pids(snapshot.get("events", ()))
    pods = tuple(
        pod_row(p, pids, facts.kernels) for p in snapshot.get("pods", ()) if _meta(p).get("namespace") == name
    )
    return NamespaceView(
        summary or NamespaceRow(name, "", 0, 0, tuple(quota_rows(snapshot, name))),
        pods,
        tuple(event_rows(snapshot, name)),
    )
