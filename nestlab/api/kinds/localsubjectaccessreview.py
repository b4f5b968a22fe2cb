"""authorization.k8s.io/v1 LocalSubjectAccessReview: a SubjectAccessReview confined to one namespace.

Namespace admins may be granted it without seeing other namespaces; its resource attributes must
name the namespace of its URL (:mod:`nestlab.api.reviews`). Answered, not kept.
"""

from __future__ import annotations

from nestlab.api.kinds.base import Kind, Resource
from nestlab.api.kinds.subjectaccessreview import PROTOBUF

RESOURCE = Resource(
    "localsubjectaccessreviews",
    "localsubjectaccessreview",
    "LocalSubjectAccessReview",
    "authorization.k8s.io",
    "v1",
    True,
    verbs=("create",),
)

KIND = Kind(RESOURCE, model="V1LocalSubjectAccessReview", protobuf=PROTOBUF)
