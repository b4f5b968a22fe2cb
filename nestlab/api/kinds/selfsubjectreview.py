"""authentication.k8s.io/v1 SelfSubjectReview: who am I (``kubectl auth whoami``). Answered, not kept.

The answer is the caller as the server authenticated it, impersonation applied (``--as=alice``
shows alice): username, uid, groups and extra (:mod:`nestlab.api.reviews`). Only v1 is served, as
a v1.30 kube-apiserver serves it by default (v1beta1 and v1alpha1 are off there), so kubectl 1.27,
which asks v1beta1 then v1alpha1, meets upstream's "not enabled in the cluster" error.
"""

from __future__ import annotations

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import PROTO_META, Kind, Resource

RESOURCE = Resource(
    "selfsubjectreviews",
    "selfsubjectreview",
    "SelfSubjectReview",
    "authentication.k8s.io",
    "v1",
    False,
    verbs=("create",),
)

KIND = Kind(
    RESOURCE,
    model="V1SelfSubjectReview",
    protobuf={1: ("metadata", PROTO_META), 2: ("status", wiremeta.IGNORE)},
)
