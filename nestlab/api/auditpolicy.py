"""Which requests the audit log records, and how much of each: kube-apiserver's audit Policy.

``--audit-policy-file`` names an ``audit.k8s.io/v1 Policy``. Its rules are checked in order and the
first rule that matches a request decides the level (``None``, ``Metadata``, ``Request``,
``RequestResponse``); a request no rule matches is not logged, as upstream. Matching follows
upstream's ``policy/checker.go`` exactly (users, userGroups, verbs, then either resources and
namespaces or nonResourceURLs), including the ``pods/log``, ``*/log``, ``pods/*`` and ``*`` forms,
so a policy written for kube-apiserver works here unchanged.

Pure: text in, :class:`Policy` out; a bad policy raises :class:`AuditPolicyError` naming the file,
the line and the field path (``rules[2].level``), so an administrator can fix it before the API
server starts.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nestlab.errors import UsageError

API_VERSIONS = ("audit.k8s.io/v1",)
KIND = "Policy"
STAGES = ("RequestReceived", "ResponseStarted", "ResponseComplete", "Panic")
_RULE_FIELDS = frozenset(
    {
        "level",
        "users",
        "userGroups",
        "verbs",
        "resources",
        "namespaces",
        "nonResourceURLs",
        "omitStages",
        "omitManagedFields",
    }
)
_GROUP_RESOURCE_FIELDS = frozenset({"group", "resources", "resourceNames"})


class AuditPolicyError(UsageError):
    """The audit policy cannot be used; the message names the file, the line and the field."""


class Level(enum.IntEnum):
    """How much of a request is recorded; each level includes the ones before it."""

    NONE = 0
    METADATA = 1
    REQUEST = 2
    REQUEST_RESPONSE = 3

    @property
    def wire(self) -> str:
        """The spelling in policies and Events (``RequestResponse``)."""
        return _WIRE[self]

    @classmethod
    def parse(cls, text: str) -> Level | None:
        return _BY_WIRE.get(text)


_WIRE = {
    Level.NONE: "None",
    Level.METADATA: "Metadata",
    Level.REQUEST: "Request",
    Level.REQUEST_RESPONSE: "RequestResponse",
}
_BY_WIRE = {text: level for level, text in _WIRE.items()}


@dataclass(frozen=True)
class GroupResources:
    """One ``resources`` entry of a rule."""

    group: str = ""
    """The API group; "" is the core group."""
    resources: tuple[str, ...] = ()
    """Empty = every resource of the group; ``pods``, ``pods/log``, ``*/log``, ``pods/*``, ``*``."""
    resource_names: tuple[str, ...] = ()
    """Empty = any name."""


@dataclass(frozen=True)
class Rule:
    """One policy rule; an empty selector matches everything."""

    level: Level
    users: frozenset[str] = frozenset()
    user_groups: frozenset[str] = frozenset()
    verbs: frozenset[str] = frozenset()
    resources: tuple[GroupResources, ...] = ()
    namespaces: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool | None = None
    """None = the policy's setting."""


@dataclass(frozen=True)
class Request:
    """What the policy looks at (upstream's authorizer.Attributes)."""

    user: str = ""
    groups: frozenset[str] = frozenset()
    verb: str = ""
    resource_request: bool = False
    group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    """The URL path, for non-resource requests."""
    authenticated: bool = True
    """False when nobody is known yet (a 401): user rules cannot match."""


@dataclass(frozen=True)
class Decision:
    """The level of a request and the stages not to record."""

    level: Level
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False


@dataclass(frozen=True)
class Policy:
    """An audit Policy: ordered rules, stages every rule omits."""

    rules: tuple[Rule, ...] = ()
    omit_stages: frozenset[str] = frozenset()
    omit_managed_fields: bool = False
    source: str = "(policy)"

    def evaluate(self, request: Request) -> Decision:
        """The first matching rule's level (None when no rule matches), as upstream."""
        for rule in self.rules:
            if rule_matches(rule, request):
                omit_fields = self.omit_managed_fields
                if rule.omit_managed_fields is not None:
                    omit_fields = rule.omit_managed_fields
                return Decision(rule.level, self.omit_stages | rule.omit_stages, omit_fields)
        return Decision(Level.NONE, self.omit_stages, self.omit_managed_fields)


# -- matching (upstream staging/src/k8s.io/apiserver/pkg/audit/policy/checker.go) ----------------
def rule_matches(rule: Rule, request: Request) -> bool:
    """Whether ``rule`` applies to ``request``."""
    if rule.users and (not request.authenticated or request.user not in rule.users):
        return False
    if rule.user_groups and (not request.authenticated or not (request.groups & rule.user_groups)):
        return False
    if rule.verbs and request.verb not in rule.verbs:
        return False
    if rule.namespaces or rule.resources:
        return _matches_resource(rule, request)
    if rule.non_resource_urls:
        urls = rule.non_resource_urls
        return not request.resource_request and any(path_matches(request.path, u) for u in urls)
    return True


def path_matches(path: str, spec: str) -> bool:
    """``*``, an exact path, or a ``prefix*`` spec."""
    if spec in ("*", path):
        return True
    return spec.endswith("*") and path.startswith(spec.rstrip("*"))


def _matches_resource(rule: Rule, request: Request) -> bool:
    if not request.resource_request:
        return False
    if rule.namespaces and request.namespace not in rule.namespaces:
        return False  # cluster-scoped resources have the namespace ""
    if not rule.resources:
        return True
    return any(_entry_matches(entry, request) for entry in rule.resources)


def _entry_matches(entry: GroupResources, request: Request) -> bool:
    if entry.group != request.group:
        return False
    if not entry.resources:
        return True
    if entry.resource_names and request.name not in entry.resource_names:
        return False
    resource, sub = request.resource, request.subresource
    combined = f"{resource}/{sub}" if sub else resource
    return any(
        spec in (combined, "*")
        or (sub and spec.startswith("*/") and spec[2:] == sub)
        or (spec.endswith("/*") and spec[:-2] == resource)
        for spec in entry.resources
    )


# -- loading and validation ------------------------------------------------------------------------
def load(path: Path) -> Policy:
    """Read and validate a policy file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise AuditPolicyError(f"cannot read audit policy {path}: {exc.strerror}") from exc
    return parse(text, source=str(path))


def parse(text: str, *, source: str = "(policy)") -> Policy:
    """A validated Policy from YAML (or JSON) text."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AuditPolicyError(f"{source}: not valid YAML: {exc}") from exc
    lines: dict[str, int] = {}
    if node is not None:
        _index_lines(node, "", lines)
    return _Parser(source, lines).policy(raw)


def _index_lines(node: yaml.Node, path: str, lines: dict[str, int]) -> None:
    """Field path (``rules[0].level``) -> 1-based line, for error messages."""
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = str(key.value)
            child = f"{path}.{name}" if path else name
            lines[child] = key.start_mark.line + 1
            _index_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, f"{path}[{index}]", lines)


@dataclass
class _Parser:
    source: str
    lines: dict[str, int]
    problems: list[str] = field(default_factory=list)

    def fail(self, path: str, message: str) -> None:
        where = path
        while where and where not in self.lines:
            where = where.rpartition(".")[0] if "." in where else where.rpartition("[")[0]
        line = self.lines.get(where)
        at = f" line {line}" if line is not None else ""
        self.problems.append(f"{self.source}:{at} {path or '(top)'}: {message}")

    def policy(self, raw: Any) -> Policy:
        if not isinstance(raw, dict):
            raise AuditPolicyError(f"{self.source}: an audit policy is a mapping (apiVersion, kind, rules)")
        if raw.get("apiVersion") not in API_VERSIONS:
            self.fail("apiVersion", f"must be {API_VERSIONS[0]}, not {raw.get('apiVersion')!r}")
        if raw.get("kind") != KIND:
            self.fail("kind", f"must be {KIND}, not {raw.get('kind')!r}")
        omit = self.stages(raw.get("omitStages"), "omitStages")
        omit_fields = self.flag(raw.get("omitManagedFields"), "omitManagedFields")
        rules_raw = raw.get("rules")
        rules: list[Rule] = []
        if not isinstance(rules_raw, list):
            self.fail("rules", "a list of rules is required (an empty list logs nothing)")
        else:
            rules = [r for i, item in enumerate(rules_raw) if (r := self.rule(item, f"rules[{i}]"))]
        if self.problems:
            raise AuditPolicyError("invalid audit policy:\n" + "\n".join(self.problems))
        return Policy(tuple(rules), omit, bool(omit_fields), self.source)

    def rule(self, raw: Any, path: str) -> Rule | None:
        if not isinstance(raw, dict):
            self.fail(path, "a rule is a mapping with at least a level")
            return None
        for unknown in sorted(set(raw) - _RULE_FIELDS):
            self.fail(f"{path}.{unknown}", f"unknown field (known: {', '.join(sorted(_RULE_FIELDS))})")
        level = Level.parse(str(raw.get("level", "")))
        if "level" not in raw:
            self.fail(f"{path}.level", "Required value: None, Metadata, Request or RequestResponse")
        elif level is None:
            self.fail(f"{path}.level", f"Unsupported value {raw['level']!r}: {', '.join(_BY_WIRE)}")
        urls = self.strings(raw.get("nonResourceURLs"), f"{path}.nonResourceURLs")
        for i, url in enumerate(urls):
            if url != "*" and not url.startswith("/"):
                self.fail(f"{path}.nonResourceURLs[{i}]", f"{url!r} must start with '/' (or be '*')")
            if "*" in url.rstrip("*") or url.count("*") > 1:
                self.fail(f"{path}.nonResourceURLs[{i}]", f"{url!r}: '*' is allowed only at the end")
        resources = self.group_resources(raw.get("resources"), f"{path}.resources")
        namespaces = self.strings(raw.get("namespaces"), f"{path}.namespaces")
        if urls and (resources or namespaces):
            self.fail(path, "rules cannot apply to both regular resources and non-resource URLs")
        flag = self.flag(raw.get("omitManagedFields"), f"{path}.omitManagedFields")
        return Rule(
            level=level or Level.NONE,
            users=frozenset(self.strings(raw.get("users"), f"{path}.users")),
            user_groups=frozenset(self.strings(raw.get("userGroups"), f"{path}.userGroups")),
            verbs=frozenset(self.strings(raw.get("verbs"), f"{path}.verbs")),
            resources=resources,
            namespaces=frozenset(namespaces),
            non_resource_urls=tuple(urls),
            omit_stages=self.stages(raw.get("omitStages"), f"{path}.omitStages"),
            omit_managed_fields=flag,
        )

    def group_resources(self, raw: Any, path: str) -> tuple[GroupResources, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.fail(path, "must be a list of {group, resources, resourceNames}")
            return ()
        found = []
        for i, item in enumerate(raw):
            where = f"{path}[{i}]"
            if not isinstance(item, dict):
                self.fail(where, "must be a mapping {group, resources, resourceNames}")
                continue
            for unknown in sorted(set(item) - _GROUP_RESOURCE_FIELDS):
                self.fail(f"{where}.{unknown}", "unknown field (known: group, resources, resourceNames)")
            group = item.get("group") or ""
            if not isinstance(group, str) or group != group.lower() or "/" in group:
                self.fail(f"{where}.group", f'{group!r} is not an API group name ("" is the core group)')
                group = ""
            names = self.strings(item.get("resourceNames"), f"{where}.resourceNames")
            resources = self.strings(item.get("resources"), f"{where}.resources")
            if names and not resources:
                self.fail(f"{where}.resourceNames", "using resource names requires at least one resource")
            found.append(GroupResources(group, tuple(resources), tuple(names)))
        return tuple(found)

    def strings(self, raw: Any, path: str) -> list[str]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            self.fail(path, "must be a list of strings")
            return []
        return list(raw)

    def stages(self, raw: Any, path: str) -> frozenset[str]:
        stages = self.strings(raw, path)
        for i, stage in enumerate(stages):
            if stage not in STAGES:
                self.fail(f"{path}[{i}]", f"Unsupported value {stage!r}: {', '.join(STAGES)}")
        return frozenset(s for s in stages if s in STAGES)

    def flag(self, raw: Any, path: str) -> bool | None:
        if raw is None or isinstance(raw, bool):
            return raw
        self.fail(path, f"must be true or false, not {raw!r}")
        return None


def cap(level: Level, ceiling: Level) -> Level:
    """``level`` lowered to ``ceiling`` (the sensitive resources never go above Metadata)."""
    return min(level, ceiling)
