"""The registry list: every kind this API server serves, each one unit (one module) of its own.

To add a kind, write ``kinds/<kind>.py`` with its :class:`~nestlab.api.kinds.base.Kind` and add it to
:data:`ALL`; discovery, routing, storage, validation, printing, field selectors, OpenAPI, protobuf
and the built-in roles pick it up from here (docs/api.md walks through it).
"""

from __future__ import annotations

from nestlab.api.kinds import (
    accessreview,
    clusterrole,
    clusterrolebinding,
    configmap,
    controllerrevision,
    cronjob,
    daemonset,
    deployment,
    endpoints,
    endpointslice,
    event,
    job,
    lease,
    limitrange,
    localsubjectaccessreview,
    namespace,
    networkpolicy,
    node,
    persistentvolume,
    persistentvolumeclaim,
    pod,
    poddisruptionbudget,
    replicaset,
    replicationcontroller,
    resourcequota,
    role,
    rolebinding,
    secret,
    selfsubjectreview,
    selfsubjectrulesreview,
    service,
    serviceaccount,
    statefulset,
    storageclass,
    subjectaccessreview,
    volumeattachment,
)
from nestlab.api.kinds.base import Kind, Resource

ALL: tuple[Kind, ...] = (
    namespace.KIND,
    node.KIND,
    pod.KIND,
    event.KIND,
    resourcequota.KIND,
    limitrange.KIND,
    lease.KIND,
    role.KIND,
    rolebinding.KIND,
    clusterrole.KIND,
    clusterrolebinding.KIND,
    accessreview.KIND,
    subjectaccessreview.KIND,
    localsubjectaccessreview.KIND,
    selfsubjectrulesreview.KIND,
    selfsubjectreview.KIND,
    replicationcontroller.KIND,
    deployment.KIND,
    replicaset.KIND,
    statefulset.KIND,
    controllerrevision.KIND,
    daemonset.KIND,
    job.KIND,
    cronjob.KIND,
    poddisruptionbudget.KIND,
    service.KIND,
    endpoints.KIND,
    endpointslice.KIND,
    networkpolicy.KIND,
    configmap.KIND,
    secret.KIND,
    serviceaccount.KIND,
    storageclass.KIND,
    persistentvolume.KIND,
    persistentvolumeclaim.KIND,
    volumeattachment.KIND,
)
_BY_RESOURCE = {kind.resource: kind for kind in ALL}
_BY_PLURAL = {(kind.resource.group, kind.resource.plural): kind for kind in ALL}


def of(resource: Resource) -> Kind:
    """The unit of a served resource."""
    return _BY_RESOURCE[resource]


def by_plural(group: str, plural: str) -> Kind | None:
    """The unit serving ``plural`` in ``group``, if any."""
    return _BY_PLURAL.get((group, plural))


__all__ = ["ALL", "Kind", "Resource", "by_plural", "of"]
