"""The front door of every request: who is calling, as whom, and whether they may.

Authentication (:class:`~nestlab.api.authn.Authenticator`), then impersonation
(:mod:`nestlab.api.impersonation`), then the authorizer, in upstream's order; each step notes what
it learnt for the audit log (:mod:`nestlab.api.auditfacts`: the user, whom they act as, the request's
verb and object, the decision and its reason under upstream's annotation keys). The resource
handlers and the discovery routes both come through here, so no route can skip a step.
"""

from __future__ import annotations

from aiohttp import web

from nestlab.api import access, auditfacts, auth, impersonation, status
from nestlab.api.authn import Authenticator
from nestlab.api.rbacrules import Attributes

DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"


class Gate:
    """Authenticates, impersonates and authorizes requests, noting audit facts as it goes."""

    def __init__(self, authenticator: Authenticator, authorizer: access.Authorizer) -> None:
        self.authenticator = authenticator
        self.authorizer = authorizer

    async def authenticate(self, request: web.Request) -> auth.User:
        """The user the request acts as: the caller (401 when nothing vouches for it), or whom it
        impersonates when it may (403 otherwise). Sets :data:`auth.CURRENT_USER`."""
        caller = await self.authenticator.authenticate(request)
        facts = auditfacts.facts(request)
        facts.user = caller
        values: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            values.setdefault(name.lower(), []).append(value)
        asked = impersonation.parse(values)
        user = caller
        if asked is not None:
            user = await impersonation.effective_user(self.authorizer, caller, asked)
            facts.impersonated = user
        auth.CURRENT_USER.set(user)
        return user

    async def authenticate_path(self, request: web.Request) -> auth.User:
        """:meth:`authenticate`, then authorize the non-resource path (discovery, OpenAPI) through
        ``nonResourceURLs`` rules (``system:discovery`` binds them to every authenticated user)."""
        user = await self.authenticate(request)
        await self.decide(request, user, Attributes(request.method.lower(), path=request.path))
        return user

    async def authorize(
        self, request: web.Request, user: auth.User, verb: str, target: access.Target
    ) -> None:
        """403 unless ``user`` may ``verb`` the target."""
        facts = auditfacts.facts(request)
        res = target.resource
        facts.verb, facts.resource, facts.group, facts.version = verb, res.plural, res.group, res.version
        facts.namespace, facts.name, facts.subresource = target.namespace, target.name, target.subresource
        asked = access.attributes(
            verb, res, namespace=target.namespace, name=target.name, subresource=target.subresource
        )
        await self.decide(request, user, asked)

    async def decide(self, request: web.Request, user: auth.User, attrs: Attributes) -> None:
        """Ask the authorizer (403 unless allowed) and note its decision and reason, as upstream."""
        annotations = auditfacts.facts(request).annotations
        try:
            reason = await self.authorizer.check_attrs(user, attrs)
        except status.ApiError as exc:
            if exc.code == 403:
                annotations.update({DECISION: "forbid", REASON: ""})
            raise
        annotations.update({DECISION: "allow", REASON: reason})
