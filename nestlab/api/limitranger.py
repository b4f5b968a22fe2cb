"""The LimitRanger admission plugin: a namespace's LimitRanges fill in and bound pods and claims.

A vSphere Namespace gives containers that name no resources its default CPU and memory, and
refuses workloads outside its bounds; upstream does that with the LimitRanger plugin reading the
namespace's LimitRange objects (:mod:`nestlab.api.kinds.limitrange`), and so does the lab:

- mutating (pods, on create): each container and init container without a request or limit for
  a resource gets the first Container item's ``defaultRequest`` / ``default``, and the pod is
  annotated ``kubernetes.io/limit-ranger`` saying what was set, as upstream. The registry runs
  mutating hooks before quota admission, so a defaulted pod is charged with its defaults.
- validating (pods on create; claims on create and update): Container items bound each
  container, Pod items the pod's total (containers summed, init containers by their maximum),
  PersistentVolumeClaim items the claim's storage request; a refusal is upstream's 403
  (``pods "x" is forbidden: minimum cpu usage per Container is 100m, but request is 50m``).

The decisions are pure functions of (LimitRanges, object); :func:`hooks` binds them to the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from nestlab.api import admitreads, quantity, status
from nestlab.api.kinds.common import as_dict, as_list
from nestlab.api.kinds.limitrange import CLAIM, CONTAINER, POD, items
from nestlab.api.registry import Hook
from nestlab.api.resources import LIMITRANGES, PERSISTENTVOLUMECLAIMS, PODS, Resource
from nestlab.api.store import Obj, Store, Wanted

ANNOTATION = "kubernetes.io/limit-ranger"
Resources = dict[str, Any]
"""A ``requests`` or ``limits`` map as stored (resource name -> quantity text)."""


def _value(text: Any) -> Decimal:
    return quantity.parse(text)


def _containers(pod: Obj) -> list[tuple[str, Obj]]:
    """("container" | "init container", container) for every well-formed container of the pod."""
    spec = as_dict(pod.get("spec"))
    found = [("container", c) for c in as_list(spec.get("containers")) if isinstance(c, dict)]
    found += [("init container", c) for c in as_list(spec.get("initContainers")) if isinstance(c, dict)]
    return found


def container_defaults(ranges: Iterable[Obj]) -> tuple[Resources, Resources]:
    """(default requests, default limits) of the Container items; the first range naming one wins."""
    requests: Resources = {}
    limits: Resources = {}
    for limit_range in ranges:
        for item in items(limit_range):
            if item.get("type") == CONTAINER:
                for name, value in as_dict(item.get("defaultRequest")).items():
                    requests.setdefault(name, value)
                for name, value in as_dict(item.get("default")).items():
                    limits.setdefault(name, value)
    return requests, limits


def apply_defaults(ranges: Iterable[Obj], pod: Obj) -> str:
    """Fill the defaults into ``pod``'s containers in place; the annotation text ("" when none set)."""
    requests, limits = container_defaults(ranges)
    if not requests and not limits:
        return ""
    notes: list[str] = []
    for what, container in _containers(pod):
        resources = container.setdefault("resources", {})
        if not isinstance(resources, dict):
            continue
        for section, defaults in (("requests", requests), ("limits", limits)):
            have = resources.setdefault(section, {})
            if not isinstance(have, dict):
                continue
            added = sorted(name for name in defaults if name not in have)
            for name in added:
                have[name] = defaults[name]
            if added:
                notes.append(f"{', '.join(added)} {section[:-1]} for {what} {container.get('name', '')}")
    if not notes:
        return ""
    text = "LimitRanger plugin set: " + "; ".join(notes)
    pod["metadata"].setdefault("annotations", {})[ANNOTATION] = text
    return text


def _minimum(kind: str, name: str, enforced: Any, requests: Resources, limits: Resources) -> str:
    """Upstream minConstraint."""
    if name not in requests:
        return f"minimum {name} usage per {kind} is {enforced}.  No request is specified"
    if _value(requests[name]) < _value(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    if name in limits and _value(limits[name]) < _value(enforced):
        return f"minimum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    return ""


def _maximum(kind: str, name: str, enforced: Any, requests: Resources, limits: Resources) -> str:
    """Upstream maxConstraint: a limit is required and bounded, and so is a request given."""
    if name not in limits:
        return f"maximum {name} usage per {kind} is {enforced}.  No limit is specified"
    if _value(limits[name]) > _value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but limit is {limits[name]}"
    if name in requests and _value(requests[name]) > _value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return ""


def _maximum_request(kind: str, name: str, enforced: Any, requests: Resources) -> str:
    """Upstream maxRequestConstraint (claims: only the request is the user's)."""
    if name not in requests:
        return f"maximum {name} usage per {kind} is {enforced}.  No request is specified"
    if _value(requests[name]) > _value(enforced):
        return f"maximum {name} usage per {kind} is {enforced}, but request is {requests[name]}"
    return ""


def _ratio(kind: str, name: str, enforced: Any, requests: Resources, limits: Resources) -> str:
    """Upstream limitRequestRatioConstraint."""
    prefix = f"{name} max limit to request ratio per {kind} is {enforced}"
    if name not in requests or _value(requests[name]) == 0:
        return f"{prefix}, but no request is specified or request is 0"
    if name not in limits or _value(limits[name]) == 0:
        return f"{prefix}, but no limit is specified or limit is 0"
    observed = _value(limits[name]) / _value(requests[name])
    if observed > _value(enforced):
        return f"{prefix}, but provided ratio is {float(observed):f}"
    return ""


def _bounds(kind: str, item: Obj, requests: Resources, limits: Resources) -> list[str]:
    """Every min, max and ratio of one item against one set of requests and limits."""
    found = [_minimum(kind, n, v, requests, limits) for n, v in sorted(as_dict(item.get("min")).items())]
    found += [_maximum(kind, n, v, requests, limits) for n, v in sorted(as_dict(item.get("max")).items())]
    ratios = sorted(as_dict(item.get("maxLimitRequestRatio")).items())
    found += [_ratio(kind, n, v, requests, limits) for n, v in ratios]
    return [f for f in found if f]


def _requirements(container: Obj) -> tuple[Resources, Resources]:
    resources = as_dict(container.get("resources"))
    return as_dict(resources.get("requests")), as_dict(resources.get("limits"))


def pod_totals(pod: Obj) -> tuple[Resources, Resources]:
    """(requests, limits) of the whole pod: containers summed, then each init container's maximum."""
    totals: tuple[dict[str, Decimal], dict[str, Decimal]] = ({}, {})
    containers = _containers(pod)
    for what, container in containers:
        if what == "container":
            for total, values in zip(totals, _requirements(container), strict=True):
                for name, text in values.items():
                    total[name] = total.get(name, Decimal(0)) + _value(text)
    for what, container in containers:
        if what == "init container":
            for total, values in zip(totals, _requirements(container), strict=True):
                for name, text in values.items():
                    total[name] = max(total.get(name, Decimal(0)), _value(text))
    requests, limits = totals
    return (
        {k: quantity.format_for(k, v) for k, v in requests.items()},
        {k: quantity.format_for(k, v) for k, v in limits.items()},
    )


def pod_violations(ranges: Iterable[Obj], pod: Obj) -> list[str]:
    """Why ``pod`` is outside the first LimitRange it breaks (upstream stops at that range)."""
    for limit_range in ranges:
        found: list[str] = []
        for item in items(limit_range):
            if item.get("type") == CONTAINER:
                for _what, container in _containers(pod):
                    found += _bounds(CONTAINER, item, *_requirements(container))
            elif item.get("type") == POD:
                found += _bounds(POD, item, *pod_totals(pod))
        if found:
            return found
    return []


def claim_violations(ranges: Iterable[Obj], claim: Obj) -> list[str]:
    """Why ``claim``'s storage request is outside the first LimitRange it breaks."""
    requests = as_dict(as_dict(as_dict(claim.get("spec")).get("resources")).get("requests"))
    for limit_range in ranges:
        found: list[str] = []
        for item in items(limit_range):
            if item.get("type") == CLAIM:
                found += [
                    _minimum(CLAIM, n, v, requests, {}) for n, v in sorted(as_dict(item.get("min")).items())
                ]
                found += [
                    _maximum_request(CLAIM, n, v, requests)
                    for n, v in sorted(as_dict(item.get("max")).items())
                ]
        found = [f for f in found if f]
        if found:
            return found
    return []


def aggregate(messages: list[str]) -> str:
    """Several errors as upstream's aggregate prints them: one bare, more in brackets."""
    return messages[0] if len(messages) == 1 else "[" + ", ".join(messages) + "]"


# The LimitRanges the mutating hook listed for a pod, kept for the validating hook of the same
# create (same request task, same object): one etcd read per pod create instead of two. Upstream's
# LimitRanger reads both times from one informer cache; a context variable is private to the request.
_LISTED: ContextVar[tuple[int, str, list[Obj]] | None] = ContextVar("nestlab_limitranges", default=None)


def _wants(resource: Resource, namespace: str, _new: Obj) -> list[Wanted]:
    """The reads of a create (:mod:`nestlab.api.admitreads`): the LimitRanges, for pods and claims."""
    return [Wanted(LIMITRANGES, namespace)] if resource in (PODS, PERSISTENTVOLUMECLAIMS) else []


def hooks(store: Store) -> tuple[Hook, Hook]:
    """(mutating, validating) registry hooks reading the namespace's LimitRanges from ``store``
    (on create, from the create's admission reads)."""

    async def ranges(namespace: str, new: Obj) -> list[Obj]:
        found = admitreads.known_list(new, Wanted(LIMITRANGES, namespace))
        if found is None:
            found, _revision = await store.list(LIMITRANGES, namespace, lambda _obj: True)
        return sorted(found, key=lambda r: str(r["metadata"].get("name", "")))

    async def mutate(resource: Resource, namespace: str, new: Obj, old: Obj | None) -> None:
        if resource is PODS and old is None:
            found = await ranges(namespace, new)
            _LISTED.set((id(new), namespace, found))
            apply_defaults(found, new)

    async def validate(resource: Resource, namespace: str, new: Obj, old: Obj | None) -> None:
        if resource is PODS and old is None:
            listed = _LISTED.get()
            _LISTED.set(None)
            same = listed is not None and listed[0] == id(new) and listed[1] == namespace
            found = pod_violations(
                listed[2] if listed is not None and same else await ranges(namespace, new), new
            )
        elif resource is PERSISTENTVOLUMECLAIMS:
            found = claim_violations(await ranges(namespace, new), new)
        else:
            return
        if found:
            name = str(new["metadata"].get("name", ""))
            raise status.admission_forbidden(resource.plural, resource.group, name, aggregate(found))

    return admitreads.ReadingHook(mutate, _wants), admitreads.ReadingHook(validate, _wants)
