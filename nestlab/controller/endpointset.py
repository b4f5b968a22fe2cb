"""Which pods back a Service, on which ports, and the Endpoints object upstream would write for them.

The facts every endpoint controller shares (pure, fed from informer caches): whether a Service is
managed at all (a selector and not ``ExternalName``), which pods it selects, a pod's address and
readiness, how a ``targetPort`` resolves in each pod (a number, or a container port's name), and
the canonical ``subsets`` of a v1 Endpoints object (upstream ``RepackSubsets``: addresses grouped
by the set of ports they serve, ready and not-ready addresses apart, sorted), so two computations
of the same world compare equal and the controller writes only when something changed.
:mod:`nestlab.controller.endpointslicing` builds EndpointSlices from the same facts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from nestlab.controller import pods as podutil
from nestlab.controller import selector as labelsel

Obj = dict[str, Any]

HEADLESS_LABEL = "service.kubernetes.io/headless"
"""Set (empty) on the Endpoints and EndpointSlices of a headless Service (clusterIP None)."""
OVER_CAPACITY = "endpoints.kubernetes.io/over-capacity"
"""Annotation ``truncated`` on Endpoints cut at MAX_ADDRESSES (upstream since 1.22)."""
MAX_ADDRESSES = 1000
"""Addresses one Endpoints object lists at most (upstream maxCapacity); EndpointSlices have no limit."""


# -- the Service --------------------------------------------------------------------------------
def selector_of(service: Obj) -> dict[str, str] | None:
    """The Service's selector map; None when absent or empty (upstream stores ``{}`` as absent)."""
    found = (service.get("spec") or {}).get("selector")
    return dict(found) if isinstance(found, dict) and found else None


def is_managed(service: Obj) -> bool:
    """Whether the endpoint controllers compute this Service's endpoints: it has a selector and is
    not ``ExternalName`` (selectorless Services get hand-written Endpoints, mirrored instead)."""
    spec = service.get("spec") or {}
    return selector_of(service) is not None and spec.get("type") != "ExternalName"


def is_headless(service: Obj) -> bool:
    """``clusterIP: None``."""
    return (service.get("spec") or {}).get("clusterIP") == "None"


def publishes_not_ready(service: Obj) -> bool:
    """``spec.publishNotReadyAddresses``: every selected pod counts as ready (StatefulSet peers)."""
    return bool((service.get("spec") or {}).get("publishNotReadyAddresses"))


def selects(service: Obj, pod: Obj) -> bool:
    """The pod is in the Service's namespace and its labels match the Service's selector."""
    sel = selector_of(service)
    if sel is None:
        return False
    if (pod.get("metadata") or {}).get("namespace") != (service.get("metadata") or {}).get("namespace"):
        return False
    return labelsel.matches(labelsel.from_map(sel), (pod.get("metadata") or {}).get("labels"))


# -- the pod -----------------------------------------------------------------------------------
def pod_ip(pod: Obj) -> str:
    """``status.podIP`` (or the first of ``status.podIPs``); "" before the agent reports one."""
    status = pod.get("status") or {}
    if status.get("podIP"):
        return str(status["podIP"])
    for entry in status.get("podIPs") or []:
        if isinstance(entry, dict) and entry.get("ip"):
            return str(entry["ip"])
    return ""


def is_terminating(pod: Obj) -> bool:
    """The pod is being deleted (``metadata.deletionTimestamp`` set)."""
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (the agent sets it once every container started)."""
    return podutil.is_ready(pod)


def in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Upstream ``ShouldPodBeInEndpoints``: not finished (Succeeded/Failed), has an address, and
    (unless ``include_terminating``) not being deleted."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ip(pod):
        return False
    return include_terminating or not is_terminating(pod)


def hostname_for(service: Obj, pod: Obj) -> str:
    """The pod's ``spec.hostname`` when its ``spec.subdomain`` names this Service (in its namespace),
    as a StatefulSet's pods under their governing Service; "" otherwise (upstream ShouldSetHostname)."""
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    svc_meta = service.get("metadata") or {}
    if (
        spec.get("hostname")
        and spec.get("subdomain") == svc_meta.get("name")
        and meta.get("namespace") == svc_meta.get("namespace")
    ):
        return str(spec["hostname"])
    return ""


def target_ref(pod: Obj) -> Obj:
    """The ObjectReference to the pod that an address or endpoint carries."""
    meta = pod.get("metadata") or {}
    ref: Obj = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", "")}
    if meta.get("uid"):
        ref["uid"] = meta["uid"]
    return ref


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """The pod's port for one Service port (upstream ``FindPort``).

    ``targetPort`` a number: that number; absent: ``port``; a name: the ``containerPort`` of the
    container port with that name and the Service port's protocol (containers, then sidecars:
    init containers with ``restartPolicy: Always``); None when no container has it.
    """
    target = service_port.get("targetPort")
    if target is None or target == "":
        target = service_port.get("port")
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    if not isinstance(target, str):
        return None
    protocol = service_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for container in [*(spec.get("containers") or []), *sidecars]:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                number = port.get("containerPort")
                return int(number) if isinstance(number, int) else None
    return None


def endpoint_fingerprint(pod: Obj) -> tuple[Any, ...]:
    """What of a pod the endpoints depend on besides its labels: a pod update that leaves this
    (and the labels) unchanged cannot change any Service's endpoints, so it enqueues nothing."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    ports = [
        (p.get("name"), p.get("containerPort"), p.get("protocol"))
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
        for p in c.get("ports") or []
    ]
    return (
        pod_ip(pod),
        is_ready(pod),
        is_terminating(pod),
        status.get("phase"),
        spec.get("nodeName"),
        spec.get("hostname"),
        spec.get("subdomain"),
        tuple(ports),
    )


# -- Endpoints (v1) ----------------------------------------------------------------------------
def clean(value: Any) -> Any:
    """``value`` without None, "", empty lists and empty maps inside mappings (Go's omitempty),
    so an object as stored by the server compares equal to the same object as computed here."""
    if isinstance(value, Mapping):
        out = {k: clean(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v not in ("", [], {})}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def _port_key(port: Obj) -> str:
    return json.dumps(clean(port), sort_keys=True)


def _address_key(address: Obj) -> tuple[str, str]:
    return str(address.get("ip", "")), str((address.get("targetRef") or {}).get("uid", ""))


def endpoints_port(service_port: Obj, number: int) -> Obj:
    """An EndpointPort for one Service port resolved to ``number`` in a pod."""
    port: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        port["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        port["appProtocol"] = service_port["appProtocol"]
    return port


def address_of(service: Obj, pod: Obj) -> Obj:
    """The EndpointAddress of a selected pod (ip, nodeName, hostname, targetRef)."""
    address: Obj = {"ip": pod_ip(pod), "targetRef": target_ref(pod)}
    if (pod.get("spec") or {}).get("nodeName"):
        address["nodeName"] = pod["spec"]["nodeName"]
    if hostname := hostname_for(service, pod):
        address["hostname"] = hostname
    return address


def repack(subsets: Iterable[Obj]) -> list[Obj]:
    """Upstream ``RepackSubsets`` + ``SortSubsets``: the canonical form of Endpoints subsets.

    Every address is mapped to the ports it serves (ready wins when an address is listed both
    ways for one port); addresses serving the same set of ports, with the same readiness, share a
    subset. Addresses sort by (ip, uid), ports by (name, port, protocol), subsets by content
    (upstream orders ports and subsets by hash; any fixed order serves the comparison).
    """
    addresses: dict[tuple[str, str], Obj] = {}
    ports: dict[str, Obj | None] = {}  # key -> port (None: the "no port" sentinel)
    by_port: dict[str, dict[tuple[str, str], bool]] = {}
    for subset in subsets:
        subset_ports: list[Obj | None] = list(subset.get("ports") or []) or [None]
        for port in subset_ports:
            pkey = "" if port is None else _port_key(port)
            ports.setdefault(pkey, None if port is None else clean(port))
            readiness = by_port.setdefault(pkey, {})
            for ready, field in ((True, "addresses"), (False, "notReadyAddresses")):
                for address in subset.get(field) or []:
                    akey = _address_key(address)
                    addresses.setdefault(akey, clean(address))
                    if not readiness.get(akey, False):
                        readiness[akey] = ready
    groups: dict[str, tuple[dict[tuple[str, str], bool], list[Obj]]] = {}
    for pkey, readiness in by_port.items():
        if not readiness:
            continue
        gkey = json.dumps(sorted(readiness.items()))
        _, group_ports = groups.setdefault(gkey, (readiness, []))
        port = ports[pkey]
        if port is not None:
            group_ports.append(port)
    final: list[Obj] = []
    for readiness, group_ports in groups.values():
        packed: Obj = {}
        serving = [addresses[k] for k in sorted(k for k, r in readiness.items() if r)]
        not_ready = [addresses[k] for k in sorted(k for k, r in readiness.items() if not r)]
        if serving:
            packed["addresses"] = serving
        if not_ready:
            packed["notReadyAddresses"] = not_ready
        if group_ports:
            packed["ports"] = sorted(
                group_ports, key=lambda p: (p.get("name", ""), p.get("port", 0), p.get("protocol", ""))
            )
        final.append(packed)
    return sorted(final, key=lambda s: json.dumps(s, sort_keys=True))


def subsets_for(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The canonical subsets of the Service's Endpoints from the pods of its namespace.

    Selected pods with an address; terminating pods only with ``publishNotReadyAddresses``
    (which also counts every pod ready); a pod goes under ``addresses`` when ready and under
    ``notReadyAddresses`` otherwise; for each Service port, a pod whose named ``targetPort`` does
    not resolve is left out of that port. A headless Service without ports lists its pods
    without ports; a Service with neither ports nor headlessness lists nothing (as upstream).
    """
    tolerate = publishes_not_ready(service)
    service_ports = list((service.get("spec") or {}).get("ports") or [])
    raw: list[Obj] = []
    for pod in pods:
        if not selects(service, pod) or not in_endpoints(pod, include_terminating=tolerate):
            continue
        address = address_of(service, pod)
        field = "addresses" if tolerate or is_ready(pod) else "notReadyAddresses"
        if not service_ports:
            if is_headless(service):
                raw.append({field: [address]})
            continue
        for service_port in service_ports:
            number = find_port(pod, service_port)
            if number is not None:
                raw.append({field: [address], "ports": [endpoints_port(service_port, number)]})
    return repack(raw)


def truncate(subsets: list[Obj], capacity: int = MAX_ADDRESSES) -> bool:
    """Upstream ``truncateEndpoints``, in place: past ``capacity`` addresses, keep ready addresses
    first, each subset keeping its share (rounded up) of what remains. True when it truncated."""
    ready = sum(len(s.get("addresses") or []) for s in subsets)
    not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if ready + not_ready <= capacity:
        return False
    field, room, total = "notReadyAddresses", capacity - ready, not_ready
    if ready > capacity:
        field, room, total = "addresses", capacity, ready
    left = room
    for subset in subsets:
        share = min(left, math.ceil(len(subset.get(field) or []) / total * room))
        subset[field] = list(subset.get(field) or [])[:share]
        if field == "addresses":
            subset.pop("notReadyAddresses", None)
        left -= len(subset[field])
        if not subset[field]:
            del subset[field]
    return True


def endpoints_labels(service: Obj) -> dict[str, str]:
    """The Service's labels, plus the headless label when headless (removed otherwise)."""
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if is_headless(service):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def desired_endpoints(service: Obj, pods: Iterable[Obj], current: Obj | None) -> Obj | None:
    """The Endpoints object to write for a managed Service, or None when ``current`` already says
    the same (same subsets in canonical form, same labels, same over-capacity mark): the
    controller then writes nothing. Past MAX_ADDRESSES the subsets are truncated and marked.

    Built on ``current`` when it exists (its uid, resourceVersion and annotations are kept, so
    the write is a compare-and-swap that fails with 409 if the object changed meanwhile).
    """
    meta = service.get("metadata") or {}
    subsets = subsets_for(service, pods)
    truncated = truncate(subsets)
    labels = endpoints_labels(service)
    if current is not None:
        have = current.get("metadata") or {}
        marked = (have.get("annotations") or {}).get(OVER_CAPACITY) == "truncated"
        if (
            (have.get("labels") or {}) == labels
            and marked == truncated
            and clean(repack(current.get("subsets") or [])) == clean(subsets)
        ):
            return None
        updated: Obj = json.loads(json.dumps(current))
    else:
        updated = {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")},
        }
    updated["metadata"]["labels"] = labels
    annotations = dict(updated["metadata"].get("annotations") or {})
    if truncated:
        annotations[OVER_CAPACITY] = "truncated"
    else:
        annotations.pop(OVER_CAPACITY, None)
    if annotations or "annotations" in updated["metadata"]:
        updated["metadata"]["annotations"] = annotations
    updated["subsets"] = subsets
    return updated
