"""An audit.k8s.io/v1 Event, built from what is known about one request.

Pure: the middleware (:mod:`nestlab.api.audit`) gathers the facts and the response, this module
decides the level (the policy, capped at Metadata for anything that carries a secret) and shapes
the Event exactly as kube-apiserver writes it: same field names and order, MicroTime timestamps,
``objectRef`` with the name taken from the object on create, ``responseStatus`` copied from a
Status body, ``authorization.k8s.io/decision`` annotations. A reader that knows upstream's audit
log (jq recipes, log shippers, ``nestlab audit``) reads this one.

When the handlers did not note a fact (a request refused before it was parsed, a route that is not
a Kubernetes resource), it is derived from the URL as upstream's RequestInfoFactory does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from nestlab.api import auth
from nestlab.api.auditpolicy import Decision, Level, Policy, Request

API_VERSION = "audit.k8s.io/v1"
AUTHENTICATED = "system:authenticated"
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
# Never above Metadata: their bodies hold credentials (Secrets, ConfigMaps by convention too,
# TokenRequest/TokenReview answers, the lab's login, users and registry-token routes).
SENSITIVE_RESOURCES = frozenset(
    {("", "secrets"), ("", "configmaps"), ("authentication.k8s.io", "tokenreviews")}
)
SENSITIVE_SUBRESOURCES = frozenset({("", "serviceaccounts", "token")})
SENSITIVE_PATH_PREFIX = "/nestlab/"
# Upstream's BasicLongRunningRequestCheck: these get a ResponseStarted event too.
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
_NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class Target:
    """What a URL names (upstream's RequestInfo)."""

    resource_request: bool = False
    verb: str = ""
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def request_info(method: str, path: str, watch: bool = False) -> Target:
    """Upstream's RequestInfoFactory: ``/api/v1/namespaces/a/pods/b/log`` -> pods/log b in a."""
    parts = [p for p in path.split("/") if p]
    verb = method.lower()
    if len(parts) < 3 or parts[0] not in ("api", "apis") or (parts[0] == "apis" and len(parts) < 4):
        return Target(verb=verb)  # a non-resource request: the verb is the HTTP method
    group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if method == "GET":
        verb = "get" if name else ("watch" if watch else "list")
    elif method == "DELETE":
        verb = "delete" if name else "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, verb)
    return Target(True, verb, group, version, resource, subresource, namespace, name)


@dataclass(frozen=True)
class Facts:
    """Everything the Event says about the request, whatever its stage."""

    audit_id: str
    received: datetime
    request_uri: str
    path: str
    target: Target
    user: auth.User | None = None
    impersonated: auth.User | None = None
    source_ips: tuple[str, ...] = ()
    user_agent: str = ""
    request_object: Any = None
    annotations: Mapping[str, str] = field(default_factory=dict)


def sensitive(facts: Facts) -> bool:
    """Whether the request may carry a credential in its body or answer."""
    t = facts.target
    if facts.path.startswith(SENSITIVE_PATH_PREFIX):
        return True  # login, users, registry tokens: whatever the handlers noted about them
    return (t.group, t.resource) in SENSITIVE_RESOURCES or (t.group, t.resource, t.subresource) in (
        SENSITIVE_SUBRESOURCES
    )


def long_running(target: Target) -> bool:
    """Watches and streams: logged when the response starts and again when it ends."""
    return target.verb in LONG_RUNNING_VERBS or (
        target.resource_request and target.subresource in LONG_RUNNING_SUBRESOURCES
    )


def decide(policy: Policy, facts: Facts) -> Decision:
    """The policy's decision for the request (as the real user, before impersonation, as upstream),
    never above Metadata for a sensitive one."""
    t, user = facts.target, facts.user
    asked = Request(
        user=user.name if user else "",
        groups=_groups(user),
        verb=t.verb,
        resource_request=t.resource_request,
        group=t.group,
        resource=t.resource,
        subresource=t.subresource,
        namespace=t.namespace,
        name=t.name,
        path=facts.path,
        authenticated=user is not None,
    )
    decision = policy.evaluate(asked)
    if sensitive(facts) and decision.level > Level.METADATA:
        return Decision(Level.METADATA, decision.omit_stages, decision.omit_managed_fields)
    return decision


def _groups(user: auth.User | None) -> frozenset[str]:
    if user is None:
        return frozenset()
    return user.groups | {AUTHENTICATED}


def user_info(user: auth.User) -> dict[str, Any]:
    """authentication/v1 UserInfo: ``username``, ``uid``, ``groups``, ``extra`` in upstream's order,
    uid and extra only when set (omitempty); every authenticated user is in system:authenticated."""
    groups = sorted(user.groups - {AUTHENTICATED})
    info: dict[str, Any] = {"username": user.name}
    if user.uid:
        info["uid"] = user.uid
    info["groups"] = [*groups, AUTHENTICATED]
    if user.extra:
        info["extra"] = {key: list(values) for key, values in sorted(user.extra.items())}
    return info


def object_ref(facts: Facts) -> dict[str, str] | None:
    """``objectRef``; a create names the object it makes (from the body, as upstream)."""
    t = facts.target
    if not t.resource_request:
        return None
    name = t.name
    if not name and isinstance(facts.request_object, dict):
        meta = facts.request_object.get("metadata")
        if isinstance(meta, dict) and isinstance(meta.get("name"), str):
            name = meta["name"]
    ref = {
        "resource": t.resource,
        "namespace": t.namespace,
        "name": name,
        "apiGroup": t.group,
        "apiVersion": t.version,
        "subresource": t.subresource,
    }
    return {key: value for key, value in ref.items() if value}


def response_status(code: int, body: Any) -> dict[str, Any]:
    """``responseStatus``: the Status body's bounded fields (as upstream), else just the code."""
    status: dict[str, Any] = {"metadata": {}}
    if isinstance(body, dict) and body.get("kind") == "Status":
        for key in ("status", "message", "reason", "details"):
            if body.get(key):
                status[key] = body[key]
    status["code"] = code
    return status


def failed_authentication(authorization_header: str, access_token: bool, client_cert: bool) -> str:
    """The responseStatus message of a 401, as upstream's WithFailedAuthenticationAudit words it."""
    methods = []
    scheme = authorization_header.strip().split(" ")
    if scheme[0].lower() == "basic" and len(scheme) > 1:
        methods.append("basic")
    if scheme[0].lower() == "bearer" and len(scheme) > 1:
        methods.append("bearer")
    if access_token:
        methods.append("access_token")
    if client_cert:
        methods.append("x509")
    if methods:
        return f"Authentication failed, attempted: {', '.join(methods)}"
    return "Authentication failed, no credentials provided"


def authorization(facts: Facts, code: int) -> dict[str, str]:
    """The authorization annotations: the authorizer's, else what the answer shows."""
    found = dict(facts.annotations)
    if DECISION not in found and facts.user is not None:
        if code == 403:
            found[DECISION] = "forbid"
            found.setdefault(REASON, "")
        elif 200 <= code < 400:
            found[DECISION] = "allow"
            found.setdefault(REASON, "")
    return found


def strip_managed_fields(obj: Any) -> Any:
    """``obj`` without metadata.managedFields (also in a list's items)."""
    if not isinstance(obj, dict):
        return obj
    copy = dict(obj)
    meta = copy.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        copy["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    items = copy.get("items")
    if isinstance(items, list):
        copy["items"] = [strip_managed_fields(item) for item in items]
    return copy


def micro_time(when: datetime) -> str:
    """metav1.MicroTime: RFC 3339, microseconds, UTC."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event(
    facts: Facts,
    decision: Decision,
    stage: str,
    stage_time: datetime,
    *,
    code: int | None = None,
    response_body: Any = None,
) -> dict[str, Any]:
    """The Event for ``stage``; ``code`` is None before there is an answer (RequestReceived)."""
    t, level = facts.target, decision.level
    body: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": API_VERSION,
        "level": level.wire,
        "auditID": facts.audit_id,
        "stage": stage,
        "requestURI": facts.request_uri,
        "verb": t.verb,
        "user": user_info(facts.user) if facts.user else {},
    }
    if facts.impersonated is not None:
        body["impersonatedUser"] = user_info(facts.impersonated)
    body["sourceIPs"] = list(facts.source_ips)
    if facts.user_agent:
        body["userAgent"] = facts.user_agent
    ref = object_ref(facts)
    if ref is not None:
        body["objectRef"] = ref
    if code is not None:
        body["responseStatus"] = response_status(code, response_body)
    request_object = facts.request_object
    response_object = response_body if stage == "ResponseComplete" else None
    if decision.omit_managed_fields:
        request_object = strip_managed_fields(request_object)
        response_object = strip_managed_fields(response_object)
    if level >= Level.REQUEST and request_object is not None:
        body["requestObject"] = request_object
    if level >= Level.REQUEST_RESPONSE and response_object is not None:
        body["responseObject"] = response_object
    body["requestReceivedTimestamp"] = micro_time(facts.received)
    body["stageTimestamp"] = micro_time(stage_time)
    annotations = authorization(facts, code) if code is not None else dict(facts.annotations)
    if annotations:
        body["annotations"] = annotations
    return body
