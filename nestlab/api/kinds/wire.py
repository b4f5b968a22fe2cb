"""Protobuf message schemas of the workload kinds: Deployment, ReplicaSet, StatefulSet, Job, CronJob, PDB.

kubectl 1.31+ sends the objects of its typed commands (``create deployment|job|cronjob|pdb``,
``drain``'s evictions) as ``application/vnd.kubernetes.protobuf`` with no JSON fallback, and
``create job --from=cronjob/NAME`` copies a whole pod template, so the server must read every
field a pod template can hold. The field numbers are upstream's, from the ``generated.proto``
files of k8s.io/api (core/v1, apps/v1, batch/v1, policy/v1) and k8s.io/apimachinery (meta/v1,
util/intstr, api/resource); field numbers never change once released, so these tables stay valid.

A schema maps field number -> (JSON name, kind); :mod:`nestlab.api.protobuf` documents the kinds.
Go encodes a non-pointer scalar even when it is zero, and the JSON encoder omits such zeros
(``omitempty``): those fields are ``int0``/``bool0`` (dropped when zero), while pointer fields,
where an explicit 0 or false means something (``replicas: 0``, ``automountServiceAccountToken:
false``), are ``int``/``bool`` and always kept.

This module holds the apps/v1, batch/v1 and policy/v1 specs and is the one the kind units import;
the meta/v1 messages (ObjectMeta, LabelSelector, DeleteOptions, Eviction) live in
:mod:`~nestlab.api.kinds.wiremeta` and the core/v1 pod template in :mod:`~nestlab.api.kinds.wirepod`,
both re-exported here.
"""

from __future__ import annotations

from nestlab.api.kinds.wiremeta import (
    DELETE_OPTIONS,
    EVICTION,
    IGNORE,
    LABEL_SELECTOR,
    OBJECT_META,
    Schema,
    listed,
)
from nestlab.api.kinds.wirepod import CONTAINER, PERSISTENT_VOLUME_CLAIM, POD_SPEC, POD_TEMPLATE_SPEC

# -- apps/v1, batch/v1, policy/v1 ---------------------------------------------------------------
_ROLLING_UPDATE_DEPLOYMENT: Schema = {1: ("maxUnavailable", "intstr"), 2: ("maxSurge", "intstr")}
DEPLOYMENT_SPEC: Schema = {
    1: ("replicas", "int"),
    2: ("selector", LABEL_SELECTOR),
    3: ("template", POD_TEMPLATE_SPEC),
    4: ("strategy", {1: ("type", "str"), 2: ("rollingUpdate", _ROLLING_UPDATE_DEPLOYMENT)}),
    5: ("minReadySeconds", "int0"),
    6: ("revisionHistoryLimit", "int"),
    7: ("paused", "bool0"),
    9: ("progressDeadlineSeconds", "int"),
}
REPLICA_SET_SPEC: Schema = {
    1: ("replicas", "int"),
    2: ("selector", LABEL_SELECTOR),
    3: ("template", POD_TEMPLATE_SPEC),
    4: ("minReadySeconds", "int0"),
}
STATEFUL_SET_SPEC: Schema = {
    1: ("replicas", "int"),
    2: ("selector", LABEL_SELECTOR),
    3: ("template", POD_TEMPLATE_SPEC),
    4: ("volumeClaimTemplates", listed(PERSISTENT_VOLUME_CLAIM)),
    5: ("serviceName", "str"),
    6: ("podManagementPolicy", "str"),
    7: (
        "updateStrategy",
        {
            1: ("type", "str"),
            2: ("rollingUpdate", {1: ("partition", "int"), 2: ("maxUnavailable", "intstr")}),
        },
    ),
    8: ("revisionHistoryLimit", "int"),
    9: ("minReadySeconds", "int0"),
    10: ("persistentVolumeClaimRetentionPolicy", {1: ("whenDeleted", "str"), 2: ("whenScaled", "str")}),
    11: ("ordinals", {1: ("start", "int0")}),
}
_POD_FAILURE_RULE: Schema = {
    1: ("action", "str"),
    2: ("onExitCodes", {1: ("containerName", "str"), 2: ("operator", "str"), 3: ("values", "ints")}),
    3: ("onPodConditions", listed({1: ("type", "str"), 2: ("status", "str")})),
}
JOB_SPEC: Schema = {
    1: ("parallelism", "int"),
    2: ("completions", "int"),
    3: ("activeDeadlineSeconds", "int"),
    4: ("selector", LABEL_SELECTOR),
    5: ("manualSelector", "bool"),
    6: ("template", POD_TEMPLATE_SPEC),
    7: ("backoffLimit", "int"),
    8: ("ttlSecondsAfterFinished", "int"),
    9: ("completionMode", "str"),
    10: ("suspend", "bool"),
    11: ("podFailurePolicy", {1: ("rules", listed(_POD_FAILURE_RULE))}),
    12: ("backoffLimitPerIndex", "int"),
    13: ("maxFailedIndexes", "int"),
    14: ("podReplacementPolicy", "str"),
    15: ("managedBy", "str"),
    16: (
        "successPolicy",
        {1: ("rules", listed({1: ("succeededIndexes", "str"), 2: ("succeededCount", "int")}))},
    ),
}
JOB_TEMPLATE_SPEC: Schema = {1: ("metadata", OBJECT_META), 2: ("spec", JOB_SPEC)}
CRON_JOB_SPEC: Schema = {
    1: ("schedule", "str"),
    2: ("startingDeadlineSeconds", "int"),
    3: ("concurrencyPolicy", "str"),
    4: ("suspend", "bool"),
    5: ("jobTemplate", JOB_TEMPLATE_SPEC),
    6: ("successfulJobsHistoryLimit", "int"),
    7: ("failedJobsHistoryLimit", "int"),
    8: ("timeZone", "str"),
}
POD_DISRUPTION_BUDGET_SPEC: Schema = {
    1: ("minAvailable", "intstr"),
    2: ("selector", LABEL_SELECTOR),
    3: ("maxUnavailable", "intstr"),
    4: ("unhealthyPodEvictionPolicy", "str"),
}


def top(spec: Schema) -> Schema:
    """A kind's top-level message: metadata (1), spec (2), and its server-owned status (3)."""
    return {1: ("metadata", OBJECT_META), 2: ("spec", spec), 3: ("status", IGNORE)}


__all__ = [
    "CONTAINER",
    "CRON_JOB_SPEC",
    "DELETE_OPTIONS",
    "DEPLOYMENT_SPEC",
    "EVICTION",
    "IGNORE",
    "JOB_SPEC",
    "LABEL_SELECTOR",
    "OBJECT_META",
    "POD_DISRUPTION_BUDGET_SPEC",
    "POD_SPEC",
    "POD_TEMPLATE_SPEC",
    "REPLICA_SET_SPEC",
    "STATEFUL_SET_SPEC",
    "Schema",
    "top",
]
