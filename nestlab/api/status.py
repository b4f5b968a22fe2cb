"""Kubernetes ``Status`` errors with the upstream codes, reasons and message shapes.

kubectl and client libraries branch on ``reason`` and ``code`` (``kubectl apply`` creates on
NotFound, retries on Conflict, prints ``message`` verbatim), so every refusal the API server makes
is one of these, built where the decision is taken, never a bare 500.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nestlab.errors import NestlabError


@dataclass(frozen=True)
class Cause:
    """One reason an object is invalid, pointing at the field (``spec.containers[0].image``)."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


@dataclass(frozen=True)
class Details:
    """What the error is about: the object's name, group and kind, and field-level causes."""

    name: str = ""
    group: str = ""
    kind: str = ""
    causes: tuple[Cause, ...] = field(default=())
    retry_after: int = 0


class ApiError(NestlabError):
    """A refusal the server answers with a Status object instead of the requested resource."""

    multiline = False
    """The message has lines on purpose (upstream's RBAC escalation lists one rule per line, each
    quoted): the server shows every other control character escaped, so client text cannot forge lines."""

    def __init__(self, code: int, reason: str, message: str, details: Details | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        """The Status object, exactly as the Kubernetes API server shapes it."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "code": self.code,
        }
        if self.reason:
            body["reason"] = self.reason
        if self.details is not None:
            details: dict[str, Any] = {}
            if self.details.name:
                details["name"] = self.details.name
            if self.details.group:
                details["group"] = self.details.group
            if self.details.kind:
                details["kind"] = self.details.kind
            if self.details.causes:
                details["causes"] = [
                    {"reason": c.reason, "message": c.message, **({"field": c.field} if c.field else {})}
                    for c in self.details.causes
                ]
            if self.details.retry_after:
                details["retryAfterSeconds"] = self.details.retry_after
            body["details"] = details
        return body


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def bad_request(message: str) -> ApiError:
    """400: the request itself is malformed (body, selector, patch)."""
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    """401: no valid credentials."""
    return ApiError(401, "Unauthorized", "Unauthorized")


def forbidden(user: str, verb: str, resource: str, group: str, *, namespace: str, name: str = "") -> ApiError:
    """403 from authorization, worded like the RBAC authorizer."""
    what = f'{_qualified(resource, group)} "{name}"' if name else _qualified(resource, group)
    where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
    message = (
        f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
        f'in API group "{group}"{where}'
    )
    return ApiError(403, "Forbidden", message, Details(name=name, group=group, kind=resource))


def admission_forbidden(resource: str, group: str, name: str, reason: str) -> ApiError:
    """403 from admission (quota, terminating namespace): ``pods "x" is forbidden: <reason>``."""
    message = f'{_qualified(resource, group)} "{name}" is forbidden: {reason}'
    return ApiError(403, "Forbidden", message, Details(name=name, group=group, kind=resource))


def not_found(resource: str, group: str, name: str) -> ApiError:
    """404 for a named object."""
    message = f'{_qualified(resource, group)} "{name}" not found'
    return ApiError(404, "NotFound", message, Details(name=name, group=group, kind=resource))


def path_not_found() -> ApiError:
    """404 for a URL that names no resource at all."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def method_not_allowed(method: str, what: str) -> ApiError:
    """405: the resource exists but does not support this verb."""
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource ({method} {what})",
    )


def already_exists(resource: str, group: str, name: str) -> ApiError:
    """409 on create of an existing name."""
    message = f'{_qualified(resource, group)} "{name}" already exists'
    return ApiError(409, "AlreadyExists", message, Details(name=name, group=group, kind=resource))


def conflict(resource: str, group: str, name: str, why: str = "") -> ApiError:
    """409 on a stale resourceVersion (optimistic concurrency)."""
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    message = f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}'
    return ApiError(409, "Conflict", message, Details(name=name, group=group, kind=resource))


def gone(message: str) -> ApiError:
    """410: the requested resourceVersion is too old (compacted); re-list."""
    return ApiError(410, "Expired", message)


def unsupported_media_type(content_type: str) -> ApiError:
    """415: a body or patch type the server does not accept."""
    return ApiError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf (for some kinds) "
        f"(got {content_type!r})",
    )


def invalid(kind: str, group: str, name: str, causes: list[Cause]) -> ApiError:
    """422 with one cause per bad field, message shaped like the upstream aggregate.

    The kind is qualified by its group as upstream's GroupKind prints it (``Deployment.apps "web"
    is invalid``); core kinds stay bare (``Pod "web" is invalid``).
    """
    parts = [f"{c.field}: {c.message}" for c in causes]
    summary = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    qualified = f"{kind}.{group}" if group else kind
    message = f'{qualified} "{name}" is invalid: {summary}'
    return ApiError(422, "Invalid", message, Details(name=name, group=group, kind=kind, causes=tuple(causes)))


def timeout(message: str) -> ApiError:
    """504 Timeout (upstream's storage timeout): the request may or may not have taken effect."""
    return ApiError(504, "Timeout", message, Details(retry_after=1))


def unavailable(message: str) -> ApiError:
    """503: storage is unreachable or the server is shutting down; clients may retry."""
    return ApiError(503, "ServiceUnavailable", message, Details(retry_after=1))
