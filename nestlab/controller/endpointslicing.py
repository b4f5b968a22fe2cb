"""EndpointSlices (discovery.k8s.io/v1) for a Service: what they should hold and the fewest writes
that get there.

Two sources feed the same planner: a Service with a selector (its pods, one endpoint per pod, as
upstream's EndpointSlice controller) and a selectorless Service's hand-written Endpoints (converted
as upstream's EndpointSliceMirroring controller does: how ``default/kubernetes`` and
``kube-system/kube-dns`` reach the proxies, which read slices only). Endpoints are grouped by
address type and port set (a slice has one port list; a pod whose named port does not resolve
serves fewer ports, so it lands in another group); :func:`plan` then keeps endpoints in the slice
that already holds them, fills slices with room before creating new ones, and deletes emptied
slices, so one pod turning ready rewrites one slice, not all of them. Pure: the controllers in
:mod:`nestlab.controller.endpointslices` and :mod:`nestlab.controller.endpointslicemirroring` do
the I/O.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from nestlab.controller import endpointset as eps

Obj = dict[str, Any]

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_CONTROLLER = "endpointslice-controller.k8s.io"
MIRROR_CONTROLLER = "endpointslicemirroring-controller.k8s.io"
SKIP_MIRROR_LABEL = "endpointslice.kubernetes.io/skip-mirror"
MAX_PER_SLICE = 100
"""Endpoints per slice made from pods (kube-controller-manager's --max-endpoints-per-slice default)."""
MAX_MIRRORED = 1000
"""Addresses mirrored per Endpoints subset, and endpoints per mirrored slice (upstream's
--mirroring-max-endpoints-per-subset default; also the API's limit per slice)."""
_SKIPPED_ANNOTATIONS = (
    "endpoints.kubernetes.io/last-change-trigger-time",
    "kubectl.kubernetes.io/last-applied-configuration",
)
_RESERVED_LABELS = (SERVICE_NAME_LABEL, MANAGED_BY_LABEL)

GroupKey = tuple[str, str]
"""(addressType, canonical JSON of the sorted ports): endpoints that can share a slice."""


@dataclass
class Group:
    """Endpoints sharing an address type and a port set."""

    address_type: str
    ports: list[Obj]
    endpoints: dict[str, Obj] = field(default_factory=dict)
    """Endpoint identity (:func:`endpoint_id`) -> endpoint, deduplicated."""


def _sorted_ports(ports: Iterable[Obj]) -> list[Obj]:
    return sorted(
        (copy.deepcopy(p) for p in ports),
        key=lambda p: (p.get("name") or "", p.get("port") or 0, p.get("protocol") or ""),
    )


def group_key(address_type: str, ports: Iterable[Obj]) -> GroupKey:
    """The key of a (address type, port set), independent of the ports' order and of how empty
    fields are stored."""
    return address_type, json.dumps([eps.clean(p) for p in _sorted_ports(ports)], sort_keys=True)


def endpoint_id(endpoint: Obj) -> str:
    """What makes two endpoints the same one (upstream hashes addresses, hostname and target)."""
    ref = endpoint.get("targetRef") or {}
    return json.dumps(
        [sorted(endpoint.get("addresses") or []), endpoint.get("hostname") or "",
         ref.get("namespace") or "", ref.get("name") or ""]
    )  # fmt: skip


def _add(groups: dict[GroupKey, Group], address_type: str, ports: list[Obj], endpoint: Obj) -> None:
    key = group_key(address_type, ports)
    group = groups.setdefault(key, Group(address_type, _sorted_ports(ports)))
    group.endpoints.setdefault(endpoint_id(endpoint), endpoint)


# -- from pods (Services with a selector) ----------------------------------------------------------
def slice_endpoint(service: Obj, pod: Obj) -> Obj:
    """The endpoint of one selected pod, conditions as upstream's EndpointSlice controller sets them:
    serving = pod Ready; terminating = being deleted; ready = serving and not terminating, or
    always with ``publishNotReadyAddresses``."""
    serving, terminating = eps.is_ready(pod), eps.is_terminating(pod)
    ready = eps.publishes_not_ready(service) or (serving and not terminating)
    endpoint: Obj = {
        "addresses": [eps.pod_ip(pod)],
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": eps.target_ref(pod),
    }
    if (pod.get("spec") or {}).get("nodeName"):
        endpoint["nodeName"] = pod["spec"]["nodeName"]
    if hostname := eps.hostname_for(service, pod):
        endpoint["hostname"] = hostname
    return endpoint


def slice_ports(service: Obj, pod: Obj) -> list[Obj]:
    """The Service's ports as this pod serves them; a named port the pod lacks is left out."""
    found: list[Obj] = []
    for service_port in (service.get("spec") or {}).get("ports") or []:
        number = eps.find_port(pod, service_port)
        if number is None:
            continue
        port: Obj = {
            "name": service_port.get("name") or "",
            "port": number,
            "protocol": service_port.get("protocol") or "TCP",
        }
        if service_port.get("appProtocol"):
            port["appProtocol"] = service_port["appProtocol"]
        found.append(port)
    return found


def _is_ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def groups_for_service(service: Obj, pods: Iterable[Obj]) -> dict[GroupKey, Group]:
    """The endpoints of a Service with a selector: every selected pod with an IPv4 address that
    has not finished (terminating pods included, marked terminating), grouped by its ports."""
    groups: dict[GroupKey, Group] = {}
    for pod in pods:
        if not eps.selects(service, pod) or not eps.in_endpoints(pod, include_terminating=True):
            continue
        if not _is_ipv4(eps.pod_ip(pod)):
            continue  # the lab is IPv4-only: an IPv6 pod would need an IPv6 slice
        _add(groups, "IPv4", slice_ports(service, pod), slice_endpoint(service, pod))
    return groups


def service_slice_meta(service: Obj) -> Obj:
    """Labels, owner and name prefix of the slices made for a Service (upstream setEndpointSliceLabels)."""
    meta = service.get("metadata") or {}
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _RESERVED_LABELS}
    cluster_ip = (service.get("spec") or {}).get("clusterIP")
    if cluster_ip in (None, "", "None"):
        labels[eps.HEADLESS_LABEL] = ""
    else:
        labels.pop(eps.HEADLESS_LABEL, None)
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = SLICE_CONTROLLER
    owner = {
        "apiVersion": "v1",
        "kind": "Service",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return {
        "namespace": meta.get("namespace", ""),
        "generateName": f"{meta.get('name', '')}-",
        "labels": labels,
        "ownerReferences": [owner],
    }


# -- from Endpoints (selectorless Services) --------------------------------------------------------
def should_mirror(endpoints: Obj | None) -> bool:
    """Upstream shouldMirror: an Endpoints object without the skip-mirror label and not used as a
    leader-election lock."""
    if endpoints is None:
        return False
    meta = endpoints.get("metadata") or {}
    if (meta.get("labels") or {}).get(SKIP_MIRROR_LABEL) == "true":
        return False
    return "control-plane.alpha.kubernetes.io/leader" not in (meta.get("annotations") or {})


def groups_for_endpoints(endpoints: Obj) -> dict[GroupKey, Group]:
    """Upstream's mirroring conversion: each subset's ports (name, port, protocol, appProtocol);
    each address an endpoint with ``ready`` True (``addresses``) or False (``notReadyAddresses``),
    its targetRef, nodeName and hostname; unparsable addresses dropped, at most MAX_MIRRORED
    addresses per subset; IPv4 only (upstream also mirrors IPv6 into IPv6 slices, which this lab's
    API refuses)."""
    groups: dict[GroupKey, Group] = {}
    for subset in endpoints.get("subsets") or []:
        ports = [
            {k: v for k, v in {
                "name": p.get("name") or "", "port": p.get("port"),
                "protocol": p.get("protocol") or "TCP", "appProtocol": p.get("appProtocol"),
            }.items() if v is not None}
            for p in subset.get("ports") or []
        ]  # fmt: skip
        listed = [(a, True) for a in subset.get("addresses") or []]
        listed += [(a, False) for a in subset.get("notReadyAddresses") or []]
        for address, ready in listed[:MAX_MIRRORED]:
            try:
                ip = ipaddress.ip_address(str(address.get("ip", "")))
            except ValueError:
                continue
            if ip.version != 4:
                continue  # the lab's Services are IPv4 only: the API refuses IPv6 slices
            endpoint: Obj = {"addresses": [str(ip)], "conditions": {"ready": ready}}
            for name in ("targetRef", "nodeName", "hostname"):
                if address.get(name):
                    endpoint[name] = copy.deepcopy(address[name])
            _add(groups, "IPv4", ports, endpoint)
    return groups


def mirror_slice_meta(endpoints: Obj) -> Obj:
    """Labels (the Endpoints' own, plus service name and managed-by), annotations, owner (the
    Endpoints) and name prefix of mirrored slices (upstream endpointslicemirroring newEndpointSlice)."""
    meta = endpoints.get("metadata") or {}
    labels = dict(meta.get("labels") or {})
    labels[SERVICE_NAME_LABEL] = meta.get("name", "")
    labels[MANAGED_BY_LABEL] = MIRROR_CONTROLLER
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in _SKIPPED_ANNOTATIONS}
    owner = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }
    out: Obj = {
        "namespace": meta.get("namespace", ""),
        "generateName": f"{meta.get('name', '')}-",
        "labels": labels,
        "ownerReferences": [owner],
    }
    if annotations:
        out["annotations"] = annotations
    return out


# -- the plan -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlicePlan:
    """The writes that bring a Service's slices to the wanted state (creates first, deletes last,
    so an endpoint moving between slices is never absent from all of them)."""

    creates: list[Obj]
    """New slices (``metadata.generateName``)."""
    updates: list[Obj]
    """Existing slices rewritten (carry their name and resourceVersion: compare-and-swap)."""
    deletes: list[Obj]
    """Existing slices to delete."""

    @property
    def empty(self) -> bool:
        """Nothing to write."""
        return not (self.creates or self.updates or self.deletes)


def _slice_key(slice_: Obj) -> GroupKey:
    return group_key(str(slice_.get("addressType") or "IPv4"), slice_.get("ports") or [])


def _meta_differs(slice_: Obj, meta: Obj) -> bool:
    have = slice_.get("metadata") or {}
    if (have.get("labels") or {}) != meta["labels"]:
        return True
    if (have.get("annotations") or {}) != (meta.get("annotations") or {}):
        return True
    owners = [(o.get("kind"), o.get("name"), o.get("uid")) for o in have.get("ownerReferences") or []]
    return owners != [(o["kind"], o["name"], o["uid"]) for o in meta["ownerReferences"]]


def _new_slice(meta: Obj, address_type: str, ports: list[Obj], endpoints: list[Obj]) -> Obj:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": copy.deepcopy(meta),
        "addressType": address_type,
        "ports": copy.deepcopy(ports),
        "endpoints": endpoints,
    }


def _rewritten(slice_: Obj, meta: Obj, endpoints: list[Obj]) -> Obj:
    out = copy.deepcopy(slice_)
    out["metadata"]["labels"] = dict(meta["labels"])
    if meta.get("annotations") or out["metadata"].get("annotations"):
        out["metadata"]["annotations"] = dict(meta.get("annotations") or {})
    out["metadata"]["ownerReferences"] = copy.deepcopy(meta["ownerReferences"])
    out["endpoints"] = endpoints
    return out


def _address_order(endpoint: Obj) -> tuple[int, int, str]:
    """Numeric address order (198.19.0.9 before 198.19.0.10), then identity."""
    first = (endpoint.get("addresses") or [""])[0]
    try:
        ip = ipaddress.ip_address(str(first))
    except ValueError:
        return 99, 0, endpoint_id(endpoint)
    return ip.version, int(ip), endpoint_id(endpoint)


def _order(endpoints: Iterable[Obj]) -> list[Obj]:
    return sorted(endpoints, key=_address_order)


def _placeholder_plan(existing: list[Obj], meta: Obj) -> SlicePlan:
    """One empty slice (an existing one kept), every other slice deleted."""
    keep = next((s for s in existing if not s.get("endpoints") and not s.get("ports")), None)
    creates = [_new_slice(meta, "IPv4", [], [])] if keep is None else []
    updates = [_rewritten(keep, meta, [])] if keep is not None and _meta_differs(keep, meta) else []
    return SlicePlan(creates, updates, [s for s in existing if s is not keep])


def plan(
    groups: dict[GroupKey, Group],
    existing: list[Obj],
    meta: Obj,
    *,
    max_per_slice: int = MAX_PER_SLICE,
    placeholder: bool = False,
) -> SlicePlan:
    """The fewest writes turning ``existing`` (this controller's slices of one Service) into slices
    holding ``groups``' endpoints, at most ``max_per_slice`` per slice.

    An endpoint stays in the slice holding it (rewritten there if its conditions changed);
    endpoints no slice holds fill slices being rewritten anyway, then slices with room, then new
    ones; a slice left empty is deleted. With ``placeholder`` (Services with a selector, as
    upstream) a Service without endpoints keeps one empty slice, so consumers see it exists.
    """
    creates: list[Obj] = []
    updates: list[Obj] = []
    deletes: list[Obj] = []
    existing = sorted(existing, key=lambda s: str((s.get("metadata") or {}).get("name", "")))
    if placeholder and not any(g.endpoints for g in groups.values()):
        return _placeholder_plan(existing, meta)
    by_key: dict[GroupKey, list[Obj]] = {}
    for slice_ in existing:
        by_key.setdefault(_slice_key(slice_), []).append(slice_)
    for key in sorted(set(groups) | set(by_key)):
        group = groups.get(key)
        want = dict(group.endpoints) if group is not None else {}
        kept: list[tuple[Obj, list[Obj], bool]] = []
        for slice_ in by_key.get(key, []):
            held: list[Obj] = []
            changed = False
            for endpoint in slice_.get("endpoints") or []:
                found = want.pop(endpoint_id(endpoint), None)
                if found is None:
                    changed = True  # gone, or a duplicate of one already placed
                    continue
                held.append(found)
                changed = changed or eps.clean(found) != eps.clean(endpoint)
            if not held or len(held) > max_per_slice:
                deletes.append(slice_)  # empty, or over the limit: its endpoints are placed anew
                want.update({endpoint_id(e): e for e in held})
                continue
            kept.append((slice_, held, changed or _meta_differs(slice_, meta)))
        leftovers = _order(want.values())
        filled: list[tuple[Obj, list[Obj], bool]] = []
        for slice_, held, changed in sorted(kept, key=lambda k: not k[2]):  # rewritten ones first
            room = max_per_slice - len(held)
            if room > 0 and leftovers:
                filled.append((slice_, held + leftovers[:room], True))
                leftovers = leftovers[room:]
            else:
                filled.append((slice_, held, changed))
        updates += [_rewritten(s, meta, held) for s, held, changed in filled if changed]
        while leftovers and group is not None:
            chunk, leftovers = leftovers[:max_per_slice], leftovers[max_per_slice:]
            creates.append(_new_slice(meta, group.address_type, group.ports, chunk))
    return SlicePlan(creates, updates, deletes)
