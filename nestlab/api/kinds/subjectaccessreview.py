"""authorization.k8s.io/v1 SubjectAccessReview: may this user (and these groups) do this? Answered, not kept.

Webhooks and administrators ask about someone else; the answer is the decision a request by that
user would meet (:mod:`nestlab.api.reviews`).
"""

from __future__ import annotations

from nestlab.api.kinds import wiremeta
from nestlab.api.kinds.accessreview import NON_RESOURCE_ATTRIBUTES, RESOURCE_ATTRIBUTES
from nestlab.api.kinds.base import PROTO_META, Kind, ProtoSchema, Resource

RESOURCE = Resource(
    "subjectaccessreviews",
    "subjectaccessreview",
    "SubjectAccessReview",
    "authorization.k8s.io",
    "v1",
    False,
    verbs=("create",),
)
SPEC: ProtoSchema = {
    1: ("resourceAttributes", RESOURCE_ATTRIBUTES),
    2: ("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
    3: ("user", "str"),
    4: ("groups", "strs"),
    5: ("extra", wiremeta.IGNORE),  # map of string lists: extras do not take part in RBAC decisions
    6: ("uid", "str"),
}
PROTOBUF: ProtoSchema = {1: ("metadata", PROTO_META), 2: ("spec", SPEC), 3: ("status", wiremeta.IGNORE)}

KIND = Kind(RESOURCE, model="V1SubjectAccessReview", protobuf=PROTOBUF)
