"""What a pod's PersistentVolumeClaims mean for scheduling it: kube-scheduler's volume PreFilters.

upstream's VolumeRestrictions and VolumeBinding plugins look at a pod's claims before any node:
a claim that does not exist (``persistentvolumeclaim "data" not found``), is being deleted or has
lost its volume keeps the pod Pending; so does an unbound claim whose class binds ``Immediate``
(``pod has unbound immediate PersistentVolumeClaims``: the provisioner binds it without the pod),
and a ReadWriteOncePod claim another pod already uses. An unbound claim whose class waits for its
first consumer (the lab's ``datastore`` class) is what the scheduler hands to the provisioner: once
the pod's node is chosen, the claim gets ``volume.kubernetes.io/selected-node`` and the volume is
created for it (:mod:`nestlab.controller.scheduler` writes it).

Where the lab differs: upstream binds the pod only once the provisioner has bound its claims
(PreBind waits); the lab binds it at once and the node agent waits for the claim and its
attachment (the pod shows ContainerCreating with the reason), so a pass never blocks on a volume.
Pure code: the scheduler passes the claims, classes and users it listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nestlab.api.kinds.persistentvolumeclaim import LOST, RWOP, SELECTED_NODE, class_of
from nestlab.api.kinds.storageclass import WAIT_FOR_FIRST_CONSUMER
from nestlab.controller.placement import NEVER_PREEMPTS, NOT_HELPFUL

Obj = dict[str, Any]
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"  # upstream VolumeBinding
RWOP_CONFLICT = (  # upstream VolumeRestrictions ErrReasonReadWriteOncePodConflict
    "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
)
ClaimKey = tuple[str, str]
"""(namespace, claim name)."""


@dataclass(frozen=True)
class ClaimCheck:
    """The verdict on a pod's claims before any node is looked at."""

    refusal: str = ""
    """Non-empty: why the pod cannot be scheduled yet (it replaces the per-node reasons)."""
    select: tuple[str, ...] = ()
    """Unbound WaitForFirstConsumer claims to annotate with the chosen node before binding."""


def claim_names(pod: Obj) -> list[str]:
    """The claims a pod's volumes name, in volume order, each once."""
    names: dict[str, None] = {}
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if isinstance(volume, dict):
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if isinstance(name, str) and name:
                names[name] = None
    return list(names)


def _is_rwop(claim: Obj) -> bool:
    return RWOP in ((claim.get("spec") or {}).get("accessModes") or [])


def _waits_for_consumer(claim: Obj, classes: Mapping[str, Obj]) -> bool:
    """upstream IsDelayBindingMode: no class or a missing class binds Immediate."""
    storage_class = classes.get(class_of(claim))
    return storage_class is not None and storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER


def _unusable(name: str, claim: Obj | None) -> str:
    """Why the claim named by a pod's volume cannot be used at all (upstream podHasPVCs); "" if it can."""
    if claim is None:
        return f'persistentvolumeclaim "{name}" not found'
    if claim["metadata"].get("deletionTimestamp"):
        return f'persistentvolumeclaim "{name}" is being deleted'
    if (claim.get("status") or {}).get("phase") == LOST:
        volume = (claim.get("spec") or {}).get("volumeName", "")
        return f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume "{volume}"'
    return ""


def check(
    pod: Obj, claims: Mapping[ClaimKey, Obj], classes: Mapping[str, Obj], rwop_users: Mapping[ClaimKey, str]
) -> ClaimCheck:
    """The PreFilter verdict for ``pod``: ``claims`` by (namespace, name), ``classes`` by name,
    ``rwop_users`` the pod (``namespace/name``) already using each ReadWriteOncePod claim."""
    names = claim_names(pod)
    if not names:
        return ClaimCheck()
    namespace = pod["metadata"].get("namespace", "")
    me = f"{namespace}/{pod['metadata']['name']}"
    found: list[Obj] = []
    for name in names:
        claim = claims.get((namespace, name))
        refusal = _unusable(name, claim)
        if refusal or claim is None:
            return ClaimCheck(refusal)
        found.append(claim)
    if any(_is_rwop(c) and rwop_users.get((namespace, c["metadata"]["name"]), me) != me for c in found):
        return ClaimCheck(RWOP_CONFLICT)
    unbound = [c for c in found if not (c.get("spec") or {}).get("volumeName")]
    if any(not _waits_for_consumer(c, classes) for c in unbound):
        return ClaimCheck(UNBOUND_IMMEDIATE)
    return ClaimCheck(select=tuple(c["metadata"]["name"] for c in unbound))


class Claims:
    """The claims, classes and ReadWriteOncePod users of one scheduling pass (updated as it places)."""

    def __init__(self, claims: list[Obj], classes: list[Obj], pods: list[Obj]) -> None:
        self.claims = {(c["metadata"].get("namespace", ""), c["metadata"]["name"]): c for c in claims}
        self.classes = {c["metadata"]["name"]: c for c in classes}
        self.users: dict[ClaimKey, str] = {}
        for pod in pods:
            placed = (pod.get("spec") or {}).get("nodeName")
            if placed and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                self.assume(pod)

    def check(self, pod: Obj) -> ClaimCheck:
        """:func:`check` against this pass's state."""
        return check(pod, self.claims, self.classes, self.users)

    def assume(self, pod: Obj) -> None:
        """``pod`` is placed: it now uses its ReadWriteOncePod claims."""
        namespace = pod["metadata"].get("namespace", "")
        for name in claim_names(pod):
            claim = self.claims.get((namespace, name))
            if claim is not None and _is_rwop(claim):
                self.users.setdefault((namespace, name), f"{namespace}/{pod['metadata']['name']}")

    def to_select(self, pod: Obj, names: tuple[str, ...], node: str) -> list[str]:
        """Of ``names`` (a :class:`ClaimCheck`'s ``select``), the claims not yet pointing at ``node``."""
        namespace = pod["metadata"].get("namespace", "")
        return [
            name
            for name in names
            if (claim := self.claims.get((namespace, name))) is not None and needs_selection(claim, node)
        ]


def needs_selection(claim: Obj, node: str) -> bool:
    """Whether the claim still has to be told ``node`` (unbound, and not already pointing there)."""
    annotations = claim["metadata"].get("annotations") or {}
    return not (claim.get("spec") or {}).get("volumeName") and annotations.get(SELECTED_NODE) != node


def preemption(pod: Obj, nodes: int) -> str:
    """DefaultPreemption's verdict after a PreFilter refusal: evicting pods cannot help anywhere."""
    if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
        return NEVER_PREEMPTS
    return f"0/{nodes} nodes are available: {nodes} {NOT_HELPFUL}."
