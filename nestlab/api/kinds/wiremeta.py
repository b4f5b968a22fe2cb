"""The protobuf schema vocabulary and the k8s.io/apimachinery meta/v1 messages every object carries.

:mod:`nestlab.api.protobuf` documents the schema kinds. This module is the bottom layer of the
tables: the core/v1 pod template (:mod:`nestlab.api.kinds.wirepod`) and the workload specs
(:mod:`nestlab.api.kinds.wire`) both build on its ObjectMeta and LabelSelector.
Field numbers are upstream's (apimachinery meta/v1 generated.proto).
"""

from __future__ import annotations

from typing import Any

Schema = dict[int, tuple[str, Any]]

IGNORE = "ignore"
"""A field the server owns or that no longer exists: known, read, and dropped (never an error)."""


def listed(schema: Schema) -> tuple[str, Schema]:
    """A repeated message field."""
    return ("list", schema)


def inline(schema: Schema) -> tuple[str, Schema]:
    """An embedded Go struct: its message's fields land in the enclosing JSON object."""
    return ("inline", schema)


# -- k8s.io/apimachinery meta/v1 --------------------------------------------------------------
OWNER_REFERENCE: Schema = {
    1: ("kind", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META: Schema = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    4: ("selfLink", "str"),
    5: ("uid", "str"),
    6: ("resourceVersion", "str"),
    7: ("generation", "int0"),
    8: ("creationTimestamp", "time"),
    9: ("deletionTimestamp", "time"),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", "map"),
    12: ("annotations", "map"),
    13: ("ownerReferences", listed(OWNER_REFERENCE)),
    14: ("finalizers", "strs"),
    15: ("clusterName", IGNORE),  # removed in 1.25; older encoders still send it empty
    17: ("managedFields", IGNORE),  # owned by the server (server-side apply)
}
LABEL_SELECTOR: Schema = {
    1: ("matchLabels", "map"),
    2: ("matchExpressions", listed({1: ("key", "str"), 2: ("operator", "str"), 3: ("values", "strs")})),
}
PRECONDITIONS: Schema = {1: ("uid", "str"), 2: ("resourceVersion", "str")}
DELETE_OPTIONS: Schema = {
    1: ("gracePeriodSeconds", "int"),
    2: ("preconditions", PRECONDITIONS),
    3: ("orphanDependents", "bool"),
    4: ("propagationPolicy", "str"),
    5: ("dryRun", "strs"),
    6: ("ignoreStoreReadErrorWithClusterBreakingPotential", "bool"),
}
EVICTION: Schema = {1: ("metadata", OBJECT_META), 2: ("deleteOptions", DELETE_OPTIONS)}
"""policy/v1 (and v1beta1) Eviction: the body of ``pods/NAME/eviction``."""
