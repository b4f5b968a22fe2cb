"""authorization.k8s.io/v1 SelfSubjectAccessReview: what ``kubectl auth can-i`` asks; answered, not kept (see
:mod:`nestlab.api.reviews`)."""

from __future__ import annotations

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.base import PROTO_META, Kind, Resource

RESOURCE = Resource(
    "selfsubjectaccessreviews",
    "selfsubjectaccessreview",
    "SelfSubjectAccessReview",
    "authorization.k8s.io",
    "v1",
    False,
    verbs=("create",),
)
RESOURCE_ATTRIBUTES = {
    1: ("namespace", "str"),
    2: ("verb", "str"),
    3: ("group", "str"),
    4: ("version", "str"),
    5: ("resource", "str"),
    6: ("subresource", "str"),
    7: ("name", "str"),
}
NON_RESOURCE_ATTRIBUTES = {1: ("path", "str"), 2: ("verb", "str")}

KIND = Kind(
    RESOURCE,
    model="V1SelfSubjectAccessReview",
    protobuf={
        3: ("status", wiremeta.IGNORE),
        1: ("metadata", PROTO_META),
        2: (
            "spec",
            {
                1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
                2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
            },
        ),
    },
)
