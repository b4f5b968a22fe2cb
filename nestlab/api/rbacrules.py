"""RBAC policy rules: what a rule allows, which rules cover others, and who a binding names.

Upstream keeps these as small pure functions (``RuleAllows`` in plugin/pkg/auth/authorizer/rbac,
``Covers``/``BreakdownRule`` in component-helpers/auth/rbac/validation, ``appliesToUser``,
``PolicyRule.CompactString``); the authorizer, escalation prevention, the built-in roles and
``SelfSubjectRulesReview`` all need the same answers, so they live here once, free of I/O, and match
upstream's semantics exactly:

- ``"*"`` in verbs, apiGroups, resources or nonResourceURLs matches everything;
- a resource ``pods/log`` matches the subresource, ``*/log`` the subresource of any resource, and a
  plain ``pods`` never matches ``pods/log``;
- a rule with resourceNames never matches a request without a name (list, create, watch of all);
- a nonResourceURL is exact, or a prefix when it ends with ``*``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nestlab.api.auth import User

Obj = dict[str, Any]
ALL = "*"
GROUP = "rbac.authorization.k8s.io"
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


@dataclass(frozen=True)
class Rule:
    """One PolicyRule of a Role or ClusterRole (sets: upstream's order carries no meaning)."""

    verbs: frozenset[str] = field(default_factory=frozenset)
    api_groups: frozenset[str] = field(default_factory=frozenset)
    """``""`` is the core group."""
    resources: frozenset[str] = field(default_factory=frozenset)
    """``pods``, ``pods/log``, ``*/scale`` or ``*``."""
    resource_names: frozenset[str] = field(default_factory=frozenset)
    """Empty: every name."""
    non_resource_urls: frozenset[str] = field(default_factory=frozenset)
    """``/healthz``, ``/apis/*``: only in ClusterRoles, never together with resources."""

    @classmethod
    def of(
        cls,
        verbs: Iterable[str],
        api_groups: Iterable[str] = (),
        resources: Iterable[str] = (),
        resource_names: Iterable[str] = (),
        non_resource_urls: Iterable[str] = (),
    ) -> Rule:
        """A rule from any iterables (``Rule.of(["get"], [""], ["pods"])``)."""
        return cls(
            frozenset(verbs),
            frozenset(api_groups),
            frozenset(resources),
            frozenset(resource_names),
            frozenset(non_resource_urls),
        )

    def to_json(self) -> Obj:
        """The PolicyRule as stored (lists sorted, empty fields left out, as upstream omits them)."""
        out: Obj = {}
        for key, values in (
            ("apiGroups", self.api_groups),
            ("resources", self.resources),
            ("resourceNames", self.resource_names),
            ("nonResourceURLs", self.non_resource_urls),
            ("verbs", self.verbs),
        ):
            if values or key == "verbs":
                out[key] = sorted(values)
        return out


@dataclass(frozen=True)
class Attributes:
    """What one request asks (upstream ``authorizer.Attributes``)."""

    verb: str
    group: str = ""
    resource: str = ""
    """Empty for a non-resource request (then ``path`` is set)."""
    subresource: str = ""
    name: str = ""
    namespace: str = ""
    path: str = ""

    @property
    def is_resource_request(self) -> bool:
        return bool(self.resource)


def _strings(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(str(item) for item in value if isinstance(item, str))


def rule_from_json(rule: Any) -> Rule:
    """One stored PolicyRule (anything malformed reads as granting nothing)."""
    if not isinstance(rule, dict):
        return Rule()
    return Rule(
        _strings(rule.get("verbs")),
        _strings(rule.get("apiGroups")),
        _strings(rule.get("resources")),
        _strings(rule.get("resourceNames")),
        _strings(rule.get("nonResourceURLs")),
    )


def rules_of(role: Obj) -> tuple[Rule, ...]:
    """The rules of a Role or ClusterRole object (``.rules``)."""
    rules = role.get("rules")
    return tuple(rule_from_json(rule) for rule in rules) if isinstance(rules, list) else ()


def _matches(values: frozenset[str], wanted: str) -> bool:
    return ALL in values or wanted in values


def resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    """Upstream ResourceMatches: ``*``, exact ``plural[/sub]``, or ``*/sub`` for a subresource."""
    for resource in rule.resources:
        if resource in (ALL, combined):
            return True
        if subresource and resource == f"*/{subresource}":
            return True
    return False


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    """Upstream NonResourceURLMatches: ``*``, exact, or ``prefix*``."""
    for url in rule.non_resource_urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(rule: Rule, attrs: Attributes) -> bool:
    """Upstream RuleAllows: whether one rule lets the request through."""
    if not _matches(rule.verbs, attrs.verb):
        return False
    if not attrs.is_resource_request:
        return non_resource_url_matches(rule, attrs.path)
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    return (
        _matches(rule.api_groups, attrs.group)
        and resource_matches(rule, combined, attrs.subresource)
        and (not rule.resource_names or attrs.name in rule.resource_names)
    )


def allows(rules: Iterable[Rule], attrs: Attributes) -> bool:
    """Whether any of ``rules`` allows the request."""
    return any(rule_allows(rule, attrs) for rule in rules)


# -- escalation: does what a caller holds cover what they grant? -----------------------------------


def breakdown(rule: Rule) -> list[Rule]:
    """Upstream BreakdownRule: one rule per (group, resource, verb[, name]) and per (url, verb)."""
    atoms = [
        Rule(frozenset({verb}), frozenset({group}), frozenset({resource}), names)
        for group in sorted(rule.api_groups)
        for resource in sorted(rule.resources)
        for verb in sorted(rule.verbs)
        for names in ([frozenset({n}) for n in sorted(rule.resource_names)] or [frozenset()])
    ]
    atoms += [
        Rule(frozenset({verb}), non_resource_urls=frozenset({url}))
        for url in sorted(rule.non_resource_urls)
        for verb in sorted(rule.verbs)
    ]
    return atoms


def _resources_cover(held: frozenset[str], wanted: frozenset[str]) -> bool:
    """Upstream resourceCoversAll: ``*``, exact, or ``*/sub`` for a wanted ``plural/sub``."""
    if ALL in held:
        return True
    for resource in wanted:
        if resource in held:
            continue
        if "/" not in resource or f"*/{resource.split('/', 1)[1]}" not in held:
            return False
    return True


def _url_covers(held: str, wanted: str) -> bool:
    return held == wanted or (held.endswith("*") and wanted.startswith(held.rstrip("*")))


def rule_covers(held: Rule, atom: Rule) -> bool:
    """Upstream ruleCovers: whether one held rule covers a broken-down rule (``*`` wanted needs
    ``*`` held: granting a wildcard is holding a wildcard)."""
    if not (ALL in held.verbs or atom.verbs <= held.verbs):
        return False
    if not (ALL in held.api_groups or atom.api_groups <= held.api_groups):
        return False
    if not _resources_cover(held.resources, atom.resources):
        return False
    if not all(any(_url_covers(h, url) for h in held.non_resource_urls) for url in atom.non_resource_urls):
        return False
    if not atom.resource_names:
        return not held.resource_names
    return not held.resource_names or atom.resource_names <= held.resource_names


def uncovered(held: Sequence[Rule], wanted: Sequence[Rule]) -> list[Rule]:
    """Upstream Covers: the atoms of ``wanted`` that no ``held`` rule covers ([] = all covered)."""
    return [
        atom
        for rule in wanted
        for atom in breakdown(rule)
        if not any(rule_covers(owner, atom) for owner in held)
    ]


def compact(rules: Sequence[Rule]) -> list[Rule]:
    """Upstream CompactRules: rules on one group, one resource and at most one name merge their
    verbs, so a refusal lists ``Verbs:["create" "get"]`` once instead of one line per verb."""
    merged: dict[tuple[str, str, frozenset[str]], frozenset[str]] = {}
    rest: list[Rule] = []
    for rule in rules:
        simple = (
            len(rule.api_groups) == 1
            and len(rule.resources) == 1
            and len(rule.resource_names) <= 1
            and not rule.non_resource_urls
        )
        if not simple:
            rest.append(rule)
            continue
        key = (next(iter(rule.api_groups)), next(iter(rule.resources)), rule.resource_names)
        merged[key] = merged.get(key, frozenset()) | rule.verbs
    rest += [Rule(verbs, frozenset({g}), frozenset({r}), names) for (g, r, names), verbs in merged.items()]
    return rest


def go_quote(value: str) -> str:
    """Go's ``%q`` of a string (printable characters kept, quotes and backslashes escaped)."""
    return json.dumps(value, ensure_ascii=False)


def go_quote_list(values: Iterable[str]) -> str:
    """Go's ``%q`` of a ``[]string`` (here sorted): ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in sorted(values)) + "]"


def describe(rule: Rule) -> str:
    """Upstream PolicyRule.CompactString: ``{APIGroups:[""], Resources:["pods"], Verbs:["create"]}``."""
    parts = [
        f"{label}:{go_quote_list(values)}"
        for label, values in (
            ("APIGroups", rule.api_groups),
            ("Resources", rule.resources),
            ("NonResourceURLs", rule.non_resource_urls),
            ("ResourceNames", rule.resource_names),
            ("Verbs", rule.verbs),
        )
        if values
    ]
    return "{" + ", ".join(parts) + "}"


# -- bindings ---------------------------------------------------------------------------------------


def service_account_user(namespace: str, name: str) -> str:
    """The user name of a ServiceAccount: ``system:serviceaccount:<ns>:<name>``."""
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def subject_matches(subject: Obj, user: User, binding_namespace: str) -> bool:
    """Upstream appliesToUser: a User by name, a Group by membership, a ServiceAccount by its user
    name (its namespace defaults to the binding's; a ClusterRoleBinding must name one)."""
    kind, name = subject.get("kind"), subject.get("name")
    if not isinstance(name, str) or not name:
        return False
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return bool(namespace) and user.name == service_account_user(str(namespace), name)
    return False


def binds(binding: Obj, user: User) -> bool:
    """Whether any subject of a RoleBinding or ClusterRoleBinding is ``user``."""
    namespace = str((binding.get("metadata") or {}).get("namespace") or "")
    subjects = binding.get("subjects")
    return isinstance(subjects, list) and any(
        isinstance(s, dict) and subject_matches(s, user, namespace) for s in subjects
    )
