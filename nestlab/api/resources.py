"""The resource types this API server serves, derived from the kind units in :mod:`nestlab.api.kinds`.

Clients (controllers, agents) import the constants below (``PODS``, ``DEPLOYMENTS``...) to name
what they ask for; discovery and routing use :func:`find` and :func:`groups`.
"""

from __future__ import annotations

from nestlab.api import kinds
from nestlab.api.kinds.base import ALL_VERBS, Resource

NAMESPACES = kinds.namespace.RESOURCE
NODES = kinds.node.RESOURCE
PODS = kinds.pod.RESOURCE
EVENTS = kinds.event.RESOURCE
QUOTAS = kinds.resourcequota.RESOURCE
LIMITRANGES = kinds.limitrange.RESOURCE
LEASES = kinds.lease.RESOURCE
ROLES = kinds.role.RESOURCE
ROLEBINDINGS = kinds.rolebinding.RESOURCE
CLUSTERROLES = kinds.clusterrole.RESOURCE
CLUSTERROLEBINDINGS = kinds.clusterrolebinding.RESOURCE
ACCESS_REVIEWS = kinds.accessreview.RESOURCE
SUBJECT_ACCESS_REVIEWS = kinds.subjectaccessreview.RESOURCE
LOCAL_SUBJECT_ACCESS_REVIEWS = kinds.localsubjectaccessreview.RESOURCE
SELF_SUBJECT_RULES_REVIEWS = kinds.selfsubjectrulesreview.RESOURCE
DEPLOYMENTS = kinds.deployment.RESOURCE
REPLICASETS = kinds.replicaset.RESOURCE
STATEFULSETS = kinds.statefulset.RESOURCE
CONTROLLER_REVISIONS = kinds.controllerrevision.RESOURCE
REPLICATION_CONTROLLERS = kinds.replicationcontroller.RESOURCE
DAEMONSETS = kinds.daemonset.RESOURCE
JOBS = kinds.job.RESOURCE
CRONJOBS = kinds.cronjob.RESOURCE
PDBS = kinds.poddisruptionbudget.RESOURCE
SERVICES = kinds.service.RESOURCE
ENDPOINTS = kinds.endpoints.RESOURCE
ENDPOINTSLICES = kinds.endpointslice.RESOURCE
NETWORKPOLICIES = kinds.networkpolicy.RESOURCE
CONFIGMAPS = kinds.configmap.RESOURCE
SECRETS = kinds.secret.RESOURCE
SERVICEACCOUNTS = kinds.serviceaccount.RESOURCE
STORAGECLASSES = kinds.storageclass.RESOURCE
PERSISTENTVOLUMES = kinds.persistentvolume.RESOURCE
PERSISTENTVOLUMECLAIMS = kinds.persistentvolumeclaim.RESOURCE
VOLUMEATTACHMENTS = kinds.volumeattachment.RESOURCE

ALL: tuple[Resource, ...] = tuple(kind.resource for kind in kinds.ALL)


def groups() -> dict[str, list[str]]:
    """Every named API group and its versions (the core group "" excluded)."""
    found: dict[str, list[str]] = {}
    for resource in ALL:
        if resource.group and resource.version not in found.setdefault(resource.group, []):
            found[resource.group].append(resource.version)
    return found


def find(group: str, version: str, plural: str) -> Resource | None:
    """The resource served at /<group>/<version>/<plural>, if any."""
    for resource in ALL:
        if (resource.group, resource.version, resource.plural) == (group, version, plural):
            return resource
    return None


def in_group_version(group: str, version: str) -> list[Resource]:
    """The resources of one group/version (empty when the group/version is not served)."""
    return [r for r in ALL if (r.group, r.version) == (group, version)]


__all__ = [
    "ALL",
    "ALL_VERBS",
    "NAMESPACES",
    "NODES",
    "PODS",
    "Resource",
    "find",
    "groups",
    "in_group_version",
]
