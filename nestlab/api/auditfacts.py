"""What the audit log needs to know about a request, noted by the handlers as they learn it.

The handlers learn who called (after authentication and impersonation), the verb, the object and
the decoded body; the audit middleware (:mod:`nestlab.api.audit`) reads these facts once the
response is known. Keeping them in one small record on the request means the handlers never
import the audit writer, and a request that fails before a fact is known is still logged with
what was known.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from nestlab.api import auth


@dataclass
class AuditFacts:
    """Filled in as the request is handled; every field may stay empty."""

    user: auth.User | None = None
    """Who authenticated."""
    impersonated: auth.User | None = None
    """Whom they act as (``Impersonate-User``), when they do."""
    verb: str = ""
    """The RBAC verb (``create``, ``list``...); empty for non-resource requests."""
    resource: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    request_object: Any = None
    """The decoded body of a write (None for reads)."""
    annotations: dict[str, str] = field(default_factory=dict)
    """``authorization.k8s.io/decision`` and ``authorization.k8s.io/reason``, as upstream."""


REQUEST_KEY = web.RequestKey("nestlab.audit", AuditFacts)


def facts(request: web.Request) -> AuditFacts:
    """The request's facts, created on first use."""
    if REQUEST_KEY in request:
        return request[REQUEST_KEY]
    made = AuditFacts()
    request[REQUEST_KEY] = made
    return made
