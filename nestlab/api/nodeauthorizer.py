"""Upstream's Node authorizer: a node agent reads only the objects its own pods need.

The node rules (each kind unit's ``roles["node"]``) let every agent ``get`` Secrets, ConfigMaps,
PersistentVolumeClaims, PersistentVolumes and ServiceAccounts. kube-apiserver narrows those reads
with its Node authorizer: a graph from each node to the pods bound to it, and from each pod to the
objects its spec names; a node may ``get`` an object only when there is a path from the node to
it. This module is that decision. :func:`related` is pure (given the pods bound to the node and,
for a PersistentVolume, the claims those pods name); :func:`decide` does the small store read it
needs (the node's pods in the object's namespace, or on every namespace for a volume).

As upstream, a read of one of these kinds without a name (``list``, ``watch``) is never allowed to
a node, and an object the node's pods name is readable even when it does not exist yet (the agent
then gets its 404, not a 403: "absent" and "forbidden" stay distinct). The refusal reason is
upstream's: ``no relationship found between node 'esx-01' and this object``.

VolumeAttachments (storage.k8s.io) are upstream's other graph vertex a node reaches: the edge goes
from the attachment to the node its ``spec.nodeName`` names, so a node may only ``get`` one by name,
and only one stored with its own name there (:func:`attached_to`). A list or watch would tell a host
which volumes the other hosts hold: refused with upstream's ``can only get individual resources of
this type``, as are lists of claims and volumes. An attachment that does not exist has no edge to
any node: 403 like another node's, so a node cannot probe names for what other hosts hold; the agent
computes its attachment's name (:func:`nestlab.api.kinds.volumeattachment.attachment_name`) and
reads a 403 or a 404 as "not attached yet".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nestlab.api import status
from nestlab.api.rbacrules import Attributes
from nestlab.api.resources import PERSISTENTVOLUMECLAIMS, PODS, VOLUMEATTACHMENTS
from nestlab.api.store import Store

Obj = dict[str, Any]
SECRETS, CONFIGMAPS, CLAIMS, VOLUMES, ACCOUNTS = (
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "persistentvolumes",
    "serviceaccounts",
)
GRAPH_RESOURCES = frozenset({SECRETS, CONFIGMAPS, CLAIMS, VOLUMES, ACCOUNTS})
"""Core-group kinds a node reads only through its pods (upstream's graph vertex types)."""
ATTACHMENTS = (VOLUMEATTACHMENTS.group, VOLUMEATTACHMENTS.plural)
"""(group, plural) of VolumeAttachments: read by a node only when attached to it."""
GET_ONLY = frozenset({CLAIMS, VOLUMES, VOLUMEATTACHMENTS.plural})
"""Kinds upstream's ``authorizeGet`` decides: a node may only get them one by one, never list or
watch them (Secrets and ConfigMaps may be listed or watched by name, a single-object watch)."""
NO_NAME = "No Object name found"
GET_ONLY_REASON = "can only get individual resources of this type"


def governs(attrs: Attributes) -> bool:
    """Whether the Node authorizer, not the plain node rules, decides ``attrs`` (a read of a graph
    kind: its subresources, such as ``serviceaccounts/token``, are decided elsewhere)."""
    if attrs.subresource:
        return False
    if attrs.group == "":
        return attrs.resource in GRAPH_RESOURCES
    return (attrs.group, attrs.resource) == ATTACHMENTS


def no_relationship(node: str) -> str:
    """Upstream's reason for a read the graph does not connect to ``node``."""
    return f"no relationship found between node '{node}' and this object"


def references(pod: Obj) -> dict[str, set[str]]:
    """The names of each graph kind ``pod``'s spec refers to (upstream's graph_populator edges):
    volumes (secret, configMap, projected sources, persistentVolumeClaim), env and envFrom of every
    container kind, imagePullSecrets and the ServiceAccount."""
    spec = pod.get("spec") or {}
    out: dict[str, set[str]] = {kind: set() for kind in (SECRETS, CONFIGMAPS, CLAIMS, ACCOUNTS)}
    containers = [
        *(spec.get("initContainers") or []),
        *(spec.get("containers") or []),
        *(spec.get("ephemeralContainers") or []),
    ]
    for c in containers:
        for item in c.get("envFrom") or []:
            out[CONFIGMAPS].add(str((item.get("configMapRef") or {}).get("name") or ""))
            out[SECRETS].add(str((item.get("secretRef") or {}).get("name") or ""))
        for item in c.get("env") or []:
            source = item.get("valueFrom") or {}
            out[CONFIGMAPS].add(str((source.get("configMapKeyRef") or {}).get("name") or ""))
            out[SECRETS].add(str((source.get("secretKeyRef") or {}).get("name") or ""))
    for volume in spec.get("volumes") or []:
        out[CLAIMS].add(str((volume.get("persistentVolumeClaim") or {}).get("claimName") or ""))
        for s in [volume, *((volume.get("projected") or {}).get("sources") or [])]:
            out[CONFIGMAPS].add(str((s.get("configMap") or {}).get("name") or ""))
            secret = s.get("secret") or {}
            out[SECRETS].add(str(secret.get("secretName") or secret.get("name") or ""))
    for ref in spec.get("imagePullSecrets") or []:
        out[SECRETS].add(str((ref or {}).get("name") or ""))
    out[ACCOUNTS].add(str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"))
    return {kind: names - {""} for kind, names in out.items()}


def bound_to(pod: Obj, node: str) -> bool:
    return bool(node) and (pod.get("spec") or {}).get("nodeName") == node


def related(node: str, attrs: Attributes, pods: Iterable[Obj], claims: Iterable[Obj] = ()) -> bool:
    """Whether a pod bound to ``node`` leads to the object ``attrs`` names (pure).

    ``pods``: pods (any; those of other nodes or namespaces are ignored); ``claims``: for a
    PersistentVolume, the PersistentVolumeClaims the node's pods name (a volume is reached through
    the claim bound to it, ``spec.volumeName``)."""
    if not attrs.name:
        return False
    mine = [p for p in pods if bound_to(p, node)]
    if attrs.resource == VOLUMES:
        wanted = {
            (str((p.get("metadata") or {}).get("namespace") or ""), name)
            for p in mine
            for name in references(p)[CLAIMS]
        }
        return any(
            (
                str((c.get("metadata") or {}).get("namespace") or ""),
                str((c.get("metadata") or {}).get("name")),
            )
            in wanted
            and (c.get("spec") or {}).get("volumeName") == attrs.name
            for c in claims
        )
    return any(
        (p.get("metadata") or {}).get("namespace") == attrs.namespace
        and attrs.name in references(p)[attrs.resource]
        for p in mine
    )


def attached_to(attachment: Obj, node: str) -> bool:
    """Whether a stored VolumeAttachment gives its volume to ``node`` (upstream's va -> node edge)."""
    return bool(node) and (attachment.get("spec") or {}).get("nodeName") == node


def _named(names: set[str]) -> Callable[[Obj], bool]:
    return lambda obj: str((obj.get("metadata") or {}).get("name")) in names


async def decide(store: Store, node: str, attrs: Attributes) -> tuple[bool, str]:
    """(decision, reason) for a node's read of a graph kind (:func:`governs` true), from the store."""
    if attrs.resource in GET_ONLY and attrs.verb != "get":
        return False, GET_ONLY_REASON
    if not attrs.name:
        return False, NO_NAME
    if (attrs.group, attrs.resource) == ATTACHMENTS:
        try:
            attachment = await store.get(VOLUMEATTACHMENTS, "", attrs.name)
        except status.ApiError as exc:
            if exc.code != 404:
                raise
            return False, no_relationship(node)  # no vertex, no edge (upstream: an unknown object)
        return (True, "") if attached_to(attachment, node) else (False, no_relationship(node))
    namespace = "" if attrs.resource == VOLUMES else attrs.namespace
    pods, _ = await store.list(PODS, namespace, lambda pod: bound_to(pod, node))
    claims: list[Obj] = []
    if attrs.resource == VOLUMES and pods:
        wanted = {(str(p["metadata"].get("namespace", "")), n) for p in pods for n in references(p)[CLAIMS]}
        for ns in sorted({ns for ns, _ in wanted}):
            names = {name for claim_ns, name in wanted if claim_ns == ns}
            found, _ = await store.list(PERSISTENTVOLUMECLAIMS, ns, _named(names))
            claims += found
    if related(node, attrs, pods, claims):
        return True, ""
    return False, no_relationship(node)
