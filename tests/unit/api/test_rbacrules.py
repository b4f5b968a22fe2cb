"""RBAC rule semantics: cases taken from upstream's rbac authorizer and policy comparator tests."""

from __future__ import annotations

import pytest

from nestlab.api.auth import User
from nestlab.api.rbacrules import (
    Attributes,
    Rule,
    allows,
    binds,
    breakdown,
    compact,
    describe,
    rule_allows,
    rule_covers,
    rules_of,
    subject_matches,
    uncovered,
)

PODS_READ = Rule.of(["get", "list", "watch"], [""], ["pods"])


def pods(verb: str, **kw: str) -> Attributes:
    return Attributes(verb=verb, group="", resource="pods", namespace="team-a", **kw)


@pytest.mark.parametrize(
    ("rule", "attrs", "expected"),
    [
        (PODS_READ, pods("get", name="web"), True),
        (PODS_READ, pods("list"), True),
        (PODS_READ, pods("create"), False),
        (PODS_READ, Attributes("get", "apps", "pods"), False),  # group must match
        (Rule.of(["*"], [""], ["pods"]), pods("deletecollection"), True),
        (Rule.of(["get"], ["*"], ["pods"]), Attributes("get", "metrics.k8s.io", "pods"), True),
        (Rule.of(["get"], [""], ["*"]), pods("get", subresource="log"), True),  # "*" covers subresources
        # a plain resource never matches its subresource, and the reverse
        (PODS_READ, pods("get", subresource="log"), False),
        (Rule.of(["get"], [""], ["pods/log"]), pods("get", subresource="log"), True),
        (Rule.of(["get"], [""], ["pods/log"]), pods("get"), False),
        (Rule.of(["get"], [""], ["*/log"]), pods("get", subresource="log"), True),
        (Rule.of(["get"], [""], ["*/log"]), pods("get"), False),
        (Rule.of(["get"], [""], ["*/status"]), pods("get", subresource="log"), False),
        # resourceNames: only requests naming one of them
        (Rule.of(["get"], [""], ["pods"], ["web"]), pods("get", name="web"), True),
        (Rule.of(["get"], [""], ["pods"], ["web"]), pods("get", name="db"), False),
        (Rule.of(["list"], [""], ["pods"], ["web"]), pods("list"), False),
        (Rule.of(["create"], [""], ["pods"], ["web"]), pods("create"), False),
        # a resource rule never allows a non-resource request and vice versa
        (Rule.of(["get"], ["*"], ["*"]), Attributes("get", path="/healthz"), False),
        (Rule.of(["get"], non_resource_urls=["/healthz"]), Attributes("get", path="/healthz"), True),
        (Rule.of(["get"], non_resource_urls=["/healthz"]), Attributes("get", path="/healthz/etcd"), False),
        (Rule.of(["get"], non_resource_urls=["/healthz*"]), Attributes("get", path="/healthz/etcd"), True),
        (Rule.of(["get"], non_resource_urls=["/apis/*"]), Attributes("get", path="/apis"), False),
        (Rule.of(["get"], non_resource_urls=["*"]), Attributes("get", path="/metrics"), True),
        (Rule.of(["get"], non_resource_urls=["/healthz"]), Attributes("post", path="/healthz"), False),
        (Rule.of(["get"], non_resource_urls=["/healthz"]), pods("get"), False),
    ],
)
def test_rule_allows_as_upstream(rule: Rule, attrs: Attributes, expected: bool) -> None:
    assert rule_allows(rule, attrs) is expected


def test_allows_is_any_rule() -> None:
    rules = [PODS_READ, Rule.of(["create"], ["apps"], ["deployments"])]
    assert allows(rules, Attributes("create", "apps", "deployments", namespace="x"))
    assert not allows(rules, Attributes("delete", "apps", "deployments", namespace="x"))
    assert not allows([], pods("get"))


def test_rules_of_reads_stored_rules_and_tolerates_junk() -> None:
    role = {
        "rules": [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]},
            {"nonResourceURLs": ["/healthz"], "verbs": ["get"]},
            "junk",
            {"verbs": "get"},
        ]
    }
    rules = rules_of(role)
    assert rules[0] == Rule.of(["get"], [""], ["pods"], ["a"])
    assert rules[1] == Rule.of(["get"], non_resource_urls=["/healthz"])
    assert rules[2] == Rule()
    assert rules[3] == Rule()
    assert not allows(rules[2:], pods("get"))
    assert rules_of({}) == ()
    assert rules_of({"rules": None}) == ()


def test_to_json_round_trips() -> None:
    rule = Rule.of(["list", "get"], [""], ["pods"], ["b", "a"])
    assert rule.to_json() == {
        "apiGroups": [""],
        "resources": ["pods"],
        "resourceNames": ["a", "b"],
        "verbs": ["get", "list"],
    }
    assert rules_of({"rules": [rule.to_json()]}) == (rule,)


def test_breakdown_is_one_atom_per_tuple() -> None:
    rule = Rule.of(["get", "list"], ["", "apps"], ["pods"], ["a", "b"], [])
    atoms = breakdown(rule)
    assert len(atoms) == 2 * 2 * 2
    assert Rule.of(["list"], ["apps"], ["pods"], ["b"]) in atoms
    urls = breakdown(Rule.of(["get", "post"], non_resource_urls=["/a", "/b*"]))
    assert len(urls) == 4
    assert Rule.of(["post"], non_resource_urls=["/b*"]) in urls


@pytest.mark.parametrize(
    ("held", "wanted", "missing"),
    [
        # exact and wildcard ownership
        ([PODS_READ], [Rule.of(["get"], [""], ["pods"])], 0),
        ([PODS_READ], [Rule.of(["get", "create"], [""], ["pods"])], 1),
        ([Rule.of(["*"], ["*"], ["*"])], [Rule.of(["*"], ["*"], ["*"])], 0),
        # granting a wildcard needs the wildcard: every verb listed is not "*"
        ([Rule.of(["get", "list", "watch"], [""], ["pods"])], [Rule.of(["*"], [""], ["pods"])], 1),
        ([PODS_READ], [Rule.of(["get"], ["*"], ["pods"])], 1),
        # subresources: "*" and "*/log" cover pods/log, "pods" does not
        ([Rule.of(["get"], [""], ["*"])], [Rule.of(["get"], [""], ["pods/log"])], 0),
        ([Rule.of(["get"], [""], ["*/log"])], [Rule.of(["get"], [""], ["pods/log"])], 0),
        ([Rule.of(["get"], [""], ["pods"])], [Rule.of(["get"], [""], ["pods/log"])], 1),
        # resourceNames: an unrestricted owner covers names; a restricted owner only its names
        ([PODS_READ], [Rule.of(["get"], [""], ["pods"], ["a"])], 0),
        ([Rule.of(["get"], [""], ["pods"], ["a"])], [Rule.of(["get"], [""], ["pods"], ["a", "b"])], 1),
        ([Rule.of(["get"], [""], ["pods"], ["a"])], [Rule.of(["get"], [""], ["pods"])], 1),
        # non-resource URLs
        (
            [Rule.of(["get"], non_resource_urls=["/healthz*"])],
            [Rule.of(["get"], non_resource_urls=["/healthz/x"])],
            0,
        ),
        (
            [Rule.of(["get"], non_resource_urls=["/healthz"])],
            [Rule.of(["get"], non_resource_urls=["/healthz*"])],
            1,
        ),
        ([Rule.of(["*"], ["*"], ["*"])], [Rule.of(["get"], non_resource_urls=["/healthz"])], 1),
        ([Rule.of(["*"], non_resource_urls=["*"])], [Rule.of(["get", "post"], non_resource_urls=["/x"])], 0),
        # several owner rules together
        (
            [Rule.of(["get"], [""], ["pods"]), Rule.of(["list"], [""], ["pods"])],
            [Rule.of(["get", "list"], [""], ["pods"])],
            0,
        ),
        ([], [Rule.of(["get"], [""], ["pods", "services"])], 2),
        ([], [], 0),
    ],
)
def test_uncovered_as_upstream_covers(held: list[Rule], wanted: list[Rule], missing: int) -> None:
    assert len(uncovered(held, wanted)) == missing


def test_uncovered_names_the_atoms() -> None:
    missing = uncovered([PODS_READ], [Rule.of(["get", "create", "delete"], [""], ["pods"])])
    assert sorted(describe(r) for r in missing) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}',
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
    ]


def test_rule_covers_needs_every_dimension() -> None:
    atom = Rule.of(["get"], ["apps"], ["deployments"])
    assert rule_covers(Rule.of(["get"], ["apps"], ["deployments"]), atom)
    assert not rule_covers(Rule.of(["list"], ["apps"], ["deployments"]), atom)
    assert not rule_covers(Rule.of(["get"], [""], ["deployments"]), atom)
    assert not rule_covers(Rule.of(["get"], ["apps"], ["replicasets"]), atom)


def test_compact_merges_verbs_of_simple_rules() -> None:
    missing = uncovered([], [Rule.of(["create", "get"], [""], ["pods", "secrets"])])
    merged = compact(missing)
    assert sorted(describe(r) for r in merged) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["create" "get"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["create" "get"]}',
    ]
    urls = compact(uncovered([], [Rule.of(["get"], non_resource_urls=["/a"])]))
    assert [describe(r) for r in urls] == ['{NonResourceURLs:["/a"], Verbs:["get"]}']


def test_describe_as_compact_string() -> None:
    assert (
        describe(Rule.of(["create"], [""], ["pods"]))
        == '{APIGroups:[""], Resources:["pods"], Verbs:["create"]}'
    )
    assert (
        describe(Rule.of(["get"], ["apps"], ["deployments"], ["web"]))
        == '{APIGroups:["apps"], Resources:["deployments"], ResourceNames:["web"], Verbs:["get"]}'
    )
    assert describe(Rule()) == "{}"
    assert (
        describe(Rule.of(["get"], [""], ['we"ird']))
        == '{APIGroups:[""], Resources:["we\\"ird"], Verbs:["get"]}'
    )


ALICE = User("alice", frozenset({"team-a", "system:authenticated"}))
SA = User("system:serviceaccount:team-a:builder", frozenset({"system:serviceaccounts"}))


@pytest.mark.parametrize(
    ("subject", "user", "namespace", "expected"),
    [
        ({"kind": "User", "name": "alice"}, ALICE, "x", True),
        ({"kind": "User", "name": "bob"}, ALICE, "x", False),
        ({"kind": "Group", "name": "team-a"}, ALICE, "x", True),
        ({"kind": "Group", "name": "alice"}, ALICE, "x", False),
        ({"kind": "User", "name": "team-a"}, ALICE, "x", False),
        ({"kind": "ServiceAccount", "name": "builder"}, SA, "team-a", True),
        ({"kind": "ServiceAccount", "name": "builder"}, SA, "team-b", False),
        ({"kind": "ServiceAccount", "name": "builder", "namespace": "team-a"}, SA, "team-b", True),
        ({"kind": "ServiceAccount", "name": "builder"}, SA, "", False),  # ClusterRoleBinding without ns
        ({"kind": "Robot", "name": "alice"}, ALICE, "x", False),
        ({"kind": "User"}, ALICE, "x", False),
    ],
)
def test_subject_matches_as_upstream(
    subject: dict[str, str], user: User, namespace: str, expected: bool
) -> None:
    assert subject_matches(subject, user, namespace) is expected


def test_binds_reads_the_binding_namespace() -> None:
    binding = {
        "metadata": {"name": "b", "namespace": "team-a"},
        "subjects": [{"kind": "User", "name": "bob"}, {"kind": "ServiceAccount", "name": "builder"}],
    }
    assert binds(binding, SA)
    assert not binds(binding, ALICE)
    assert not binds({"metadata": {"name": "c"}}, ALICE)
