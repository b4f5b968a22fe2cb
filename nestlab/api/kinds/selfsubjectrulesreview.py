"""authorization.k8s.io/v1 SelfSubjectRulesReview: everything I may do in a namespace (``kubectl auth
can-i --list``). Answered from the caller's RBAC rules (:mod:`nestlab.api.reviews`), not kept.
"""

from __future__ import annotations

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import PROTO_META, Kind, Resource

RESOURCE = Resource(
    "selfsubjectrulesreviews",
    "selfsubjectrulesreview",
    "SelfSubjectRulesReview",
    "authorization.k8s.io",
    "v1",
    False,
    verbs=("create",),
)

KIND = Kind(
    RESOURCE,
    model="V1SelfSubjectRulesReview",
    protobuf={
        1: ("metadata", PROTO_META),
        2: ("spec", {1: ("namespace", "str")}),
        3: ("status", wiremeta.IGNORE),
    },
)
