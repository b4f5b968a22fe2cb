"""Reviews: the kinds that are answered instead of being stored.

``kubectl auth can-i`` sends a SelfSubjectAccessReview (``--list``: a SelfSubjectRulesReview); a
webhook or an administrator asks about someone else with a SubjectAccessReview, or a
LocalSubjectAccessReview confined to one namespace. Each is validated as upstream validates it and
answered with the very decision a request would meet (:class:`~nestlab.api.access.Authorizer`).
``kubectl auth whoami`` sends a SelfSubjectReview (authentication.k8s.io), answered with the caller
as authenticated, impersonation applied.
"""

from __future__ import annotations

from typing import Any

from nestlab.api import access, auth, resources, status, store
from nestlab.api.kinds.selfsubjectreview import RESOURCE as SELF_SUBJECT_REVIEWS
from nestlab.api.rbacrules import Attributes, Rule
from nestlab.api.resources import (
    LOCAL_SUBJECT_ACCESS_REVIEWS,
    SELF_SUBJECT_RULES_REVIEWS,
    SUBJECT_ACCESS_REVIEWS,
    Resource,
)
from nestlab.api.status import Cause
from nestlab.api.store import Obj

_EXACTLY_ONE = "exactly one of nonResourceAttributes or resourceAttributes must be specified"


def _invalid(resource: Resource, causes: list[Cause]) -> status.ApiError:
    return status.invalid(resource.kind, resource.group, "", causes)


def _shown(value: Any) -> str:
    """How upstream's field.Invalid prints a value: strings quoted, nil as "null"."""
    return "null" if value is None else f'"{value}"' if isinstance(value, str) else str(value)


def _attributes(spec: Obj) -> Attributes:
    """The authorizer attributes a review's spec asks about (a served kind is mapped as a request
    on it would be: a cluster-scoped kind has no namespace)."""
    found = spec.get("resourceAttributes")
    if isinstance(found, dict):
        group, plural = str(found.get("group", "")), str(found.get("resource", ""))
        verb, name = str(found.get("verb", "")), str(found.get("name", ""))
        namespace, sub = str(found.get("namespace", "")), str(found.get("subresource", ""))
        served = resources.find(group, str(found.get("version", "")) or _version(group, plural), plural)
        if served is not None:
            return access.attributes(verb, served, namespace=namespace, name=name, subresource=sub)
        return Attributes(verb, group, plural, sub, name, namespace)
    asked = spec.get("nonResourceAttributes") or {}
    return Attributes(str(asked.get("verb", "")), path=str(asked.get("path", "")))


def _version(group: str, plural: str) -> str:
    """The version a kind is served at, when the review leaves it out."""
    for resource in resources.ALL:
        if (resource.group, resource.plural) == (group, plural):
            return resource.version
    return ""


def _spec_causes(spec: Obj) -> list[Cause]:
    """ValidateSelfSubjectAccessReviewSpec: exactly one of the two attribute kinds."""
    has_resource, has_path = (
        spec.get("resourceAttributes") is not None,
        spec.get("nonResourceAttributes") is not None,
    )
    if has_resource and has_path:
        return [
            Cause(
                "spec.nonResourceAttributes",
                'Invalid value: "object": cannot be specified in combination with resourceAttributes',
            )
        ]
    if not has_resource and not has_path:
        return [Cause("spec.resourceAttributes", f'Invalid value: "null": {_EXACTLY_ONE}')]
    for key in ("resourceAttributes", "nonResourceAttributes"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            return [Cause(f"spec.{key}", f"Invalid value: {_shown(spec[key])}: must be an object")]
    return []


def _subject(spec: Obj) -> tuple[auth.User, list[Cause]]:
    """The user a (Local)SubjectAccessReview asks about (with its uid and extra, as upstream hands
    them to the authorizer), and the causes against spec.user/groups/uid/extra."""
    name, groups = spec.get("user", ""), spec.get("groups") or []
    causes = []
    if not isinstance(name, str):
        causes.append(Cause("spec.user", f"Invalid value: {_shown(name)}: must be a string"))
        name = ""
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        causes.append(Cause("spec.groups", "Invalid value: must be a list of strings"))
        groups = []
    if not name and not groups:
        causes.append(
            Cause("spec.user", 'Invalid value: "": at least one of user or group must be specified')
        )
    uid, extra = spec.get("uid", ""), spec.get("extra") or {}
    if not isinstance(uid, str):
        causes.append(Cause("spec.uid", f"Invalid value: {_shown(uid)}: must be a string"))
        uid = ""
    if not isinstance(extra, dict) or not all(
        isinstance(v, list) and all(isinstance(i, str) for i in v) for v in extra.values()
    ):
        causes.append(Cause("spec.extra", "Invalid value: must map keys to lists of strings"))
        extra = {}
    found = {str(key): tuple(values) for key, values in extra.items()}
    return auth.User(name, frozenset(groups), uid=uid, extra=found), causes


_LAST_GROUPS = (auth.AUTHENTICATED, "system:unauthenticated")
"""Appended by upstream after the authenticator's own groups (its group adder, impersonation)."""


def user_info(user: auth.User) -> Obj:
    """authentication/v1 UserInfo of ``user`` (empty uid, groups and extra left out, as upstream's
    omitempty). Groups keep upstream's order as far as a set can: the authenticator's own groups
    (sorted), then ``system:authenticated``."""
    groups = sorted(g for g in user.groups if g not in _LAST_GROUPS)
    groups += [g for g in _LAST_GROUPS if g in user.groups]
    info: Obj = {"username": user.name} if user.name else {}
    if user.uid:
        info["uid"] = user.uid
    if groups:
        info["groups"] = groups
    if user.extra:
        info["extra"] = {key: list(user.extra[key]) for key in sorted(user.extra)}
    return info


def self_subject_review(user: auth.User) -> Obj:
    """upstream selfsubjectreview REST.Create: the caller's user info; the request's metadata and
    status are not read, the answer's metadata holds only its creationTimestamp."""
    return {
        "kind": SELF_SUBJECT_REVIEWS.kind,
        "apiVersion": SELF_SUBJECT_REVIEWS.group_version,
        "metadata": {"creationTimestamp": store.now()},
        "status": {"userInfo": user_info(user)},
    }


def _decision_status(allowed: bool, reason: str) -> Obj:
    answer: Obj = {"allowed": allowed}
    if reason:
        answer["reason"] = reason
    return answer


def rules_status(rules: list[Rule]) -> Obj:
    """SubjectRulesReviewStatus: resource rules and non-resource rules, as RBAC holds them."""
    resource_rules, path_rules = [], []
    for rule in rules:
        if rule.non_resource_urls:
            path_rules.append(
                {"verbs": sorted(rule.verbs), "nonResourceURLs": sorted(rule.non_resource_urls)}
            )
            continue
        entry: Obj = {"verbs": sorted(rule.verbs)}
        for key, values in (
            ("apiGroups", rule.api_groups),
            ("resources", rule.resources),
            ("resourceNames", rule.resource_names),
        ):
            if values:
                entry[key] = sorted(values)
        resource_rules.append(entry)
    return {"resourceRules": resource_rules, "nonResourceRules": path_rules, "incomplete": False}


async def answer(
    authorizer: access.Authorizer, resource: Resource, user: auth.User, namespace: str, body: Any
) -> Obj:
    """The review ``body`` (created by ``user`` at ``namespace`` of the URL) with its status filled."""
    if resource is SELF_SUBJECT_REVIEWS:
        return self_subject_review(user)
    if not isinstance(body, dict) or not isinstance(body.get("spec"), dict):
        raise _invalid(resource, [Cause("spec", "Required value", "FieldValueRequired")])
    spec: Obj = body["spec"]
    meta: Obj = dict(body.get("metadata") or {}) if isinstance(body.get("metadata"), dict) else {}
    if resource.namespaced:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
    if resource is SELF_SUBJECT_RULES_REVIEWS:
        asked = spec.get("namespace", "")
        if not isinstance(asked, str):
            raise _invalid(
                resource, [Cause("spec.namespace", f"Invalid value: {_shown(asked)}: must be a string")]
            )
        found = rules_status(await authorizer.rules_for(user, asked))
        return _shaped(resource, meta, spec, found)
    causes = _spec_causes(spec)
    subject = user
    if resource in (SUBJECT_ACCESS_REVIEWS, LOCAL_SUBJECT_ACCESS_REVIEWS):
        subject, more = _subject(spec)
        causes += more
    if resource is LOCAL_SUBJECT_ACCESS_REVIEWS and not causes:
        causes += _local_causes(spec, namespace)
    if causes:
        raise _invalid(resource, causes)
    allowed, reason = await authorizer.allowed_attrs(subject, _attributes(spec))
    return _shaped(resource, meta, spec, _decision_status(allowed, reason))


def _local_causes(spec: Obj, namespace: str) -> list[Cause]:
    """ValidateLocalSubjectAccessReview: only resource attributes, in the review's own namespace."""
    if spec.get("nonResourceAttributes") is not None:
        return [
            Cause("spec.nonResourceAttributes", 'Invalid value: "object": disallowed on this kind of request')
        ]
    asked = str(spec["resourceAttributes"].get("namespace", ""))
    if asked != namespace:
        return [
            Cause(
                "spec.resourceAttributes.namespace",
                f"Invalid value: {_shown(asked)}: must match metadata.namespace",
            )
        ]
    return []


def _shaped(resource: Resource, meta: Obj, spec: Obj, found: Obj) -> Obj:
    return {
        "kind": resource.kind,
        "apiVersion": resource.group_version,
        "metadata": meta,
        "spec": spec,
        "status": found,
    }
