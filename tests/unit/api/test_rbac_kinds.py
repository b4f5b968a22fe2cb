"""Role, ClusterRole, RoleBinding, ClusterRoleBinding units: validation, defaults, printing, protobuf."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from nestlab.api import kinds, protobuf, resources, schemas
from nestlab.api.kinds import clusterrole, clusterrolebinding, printing, rbac, role, rolebinding

Obj = dict[str, Any]


def messages(causes: list[Any]) -> list[str]:
    return [f"{c.field}: {c.message}" for c in causes]


def a_role(**extra: Any) -> Obj:
    return {
        "metadata": {"name": "pod-reader", "namespace": "team-a"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}],
        **extra,
    }


def a_binding(kind: str = "ClusterRole", name: str = "edit", **extra: Any) -> Obj:
    return {
        "metadata": {"name": "devs", "namespace": "team-a"},
        "roleRef": {"apiGroup": rbac.GROUP, "kind": kind, "name": name},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": rbac.GROUP}],
        **extra,
    }


def test_units_are_registered() -> None:
    assert resources.ROLES.namespaced
    assert not resources.CLUSTERROLES.namespaced
    assert not resources.CLUSTERROLEBINDINGS.namespaced
    assert kinds.of(resources.ROLES) is role.KIND
    assert kinds.by_plural(rbac.GROUP, "clusterrolebindings") is clusterrolebinding.KIND
    assert "roles" in role.KIND.roles["admin"]
    assert "rolebindings" in rolebinding.KIND.roles["admin"]


def test_a_good_role_and_system_names() -> None:
    assert role.validate(a_role()) == []
    named = a_role()
    named["metadata"]["name"] = "system:controller:x"  # RBAC names are path segments, not DNS names
    assert role.validate(named) == []
    assert role.validate({"metadata": {"name": "empty"}}) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a/b", "metadata.name: Invalid value: \"a/b\": may not contain '/'"),
        ("a%b", "metadata.name: Invalid value: \"a%b\": may not contain '%'"),
        ("..", "metadata.name: Invalid value: \"..\": may not be '..'"),
        ("", "metadata.name: Required value: name or generateName is required"),
    ],
)
def test_rbac_names(name: str, message: str) -> None:
    bad = a_role()
    bad["metadata"]["name"] = name
    assert messages(role.validate(bad)) == [message]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"apiGroups": [""], "resources": ["pods"]},
            ["rules[0].verbs: Required value: verbs must contain at least one value"],
        ),
        (
            {"verbs": ["get"]},
            [
                "rules[0].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[0].resources: Required value: resource rules must supply at least one resource",
            ],
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/healthz"]},
            [
                'rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules cannot apply to '
                "non-resource URLs"
            ],
        ),
        ({"verbs": "get"}, ["rules[0].verbs: Invalid value: must be a list of strings"]),
        ("x", ["rules[0]: Invalid value: must be an object"]),
    ],
)
def test_role_rules_as_upstream(rule: Any, expected: list[str]) -> None:
    assert messages(role.validate(a_role(rules=[rule]))) == expected


def test_cluster_role_rules_and_aggregation() -> None:
    urls: Obj = {
        "metadata": {"name": "probe"},
        "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez"]}],
    }
    assert clusterrole.validate(urls) == []
    mixed = copy.deepcopy(urls)
    mixed["rules"][0]["resources"] = ["pods"]
    assert messages(clusterrole.validate(mixed)) == [
        'rules[0].nonResourceURLs: Invalid value: []string{"/healthz", "/livez"}: rules cannot apply to both '
        "regular resources and non-resource URLs"
    ]
    empty = {"metadata": {"name": "agg"}, "aggregationRule": {}}
    assert messages(clusterrole.validate(empty)) == [
        "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if "
        "aggregationRule is non-nil"
    ]
    bad = {
        "metadata": {"name": "agg"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"a/b/c": "x"}}]},
    }
    assert [c.field for c in clusterrole.validate(bad)] == [
        "aggregationRule.clusterRoleSelectors[0].matchLabels"
    ]


def test_aggregation_selectors_match_labels() -> None:
    agg = {
        "metadata": {"name": "monitoring"},
        "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"example.com/monitoring": "true"}}]},
    }
    labelled = {"metadata": {"name": "m1", "labels": {"example.com/monitoring": "true"}}}
    assert clusterrole.is_aggregated(agg)
    assert clusterrole.aggregates(agg, labelled)
    assert not clusterrole.aggregates(agg, {"metadata": {"name": "m2"}})
    assert not clusterrole.aggregates({"metadata": {"name": "x"}}, labelled)
    # an empty selector takes every role, as upstream's
    assert clusterrole.aggregates({"aggregationRule": {"clusterRoleSelectors": [{}]}}, labelled)


def test_binding_defaults_fill_the_rbac_group() -> None:
    binding: Obj = {
        "metadata": {"name": "b", "namespace": "team-a"},
        "roleRef": {"kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "builder"}],
    }
    rolebinding.KIND.default(binding)
    assert binding["roleRef"]["apiGroup"] == rbac.GROUP
    assert binding["subjects"][0]["apiGroup"] == rbac.GROUP
    assert "apiGroup" not in binding["subjects"][1]
    assert rolebinding.validate(binding) == []


def test_binding_to_any_role_and_refusals() -> None:
    assert rolebinding.validate(a_binding("Role", "pod-reader")) == []
    assert rolebinding.validate(a_binding("ClusterRole", "cluster-admin")) == []
    assert rolebinding.validate(a_binding("ClusterRole", "no-such-role")) == []  # grants nothing, as upstream
    bad = a_binding("Robot", "")
    bad["roleRef"]["apiGroup"] = "example.com"
    bad["subjects"] = [
        {"kind": "Robot", "name": "r2"},
        {"kind": "User", "apiGroup": ""},
        {"kind": "ServiceAccount", "name": "Bad_Name", "apiGroup": rbac.GROUP},
    ]
    assert messages(rolebinding.validate(bad)) == [
        'roleRef.apiGroup: Unsupported value: "example.com": supported values: "rbac.authorization.k8s.io"',
        'roleRef.kind: Unsupported value: "Robot": supported values: "Role", "ClusterRole"',
        "roleRef.name: Required value",
        'subjects[0].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", "Group"',
        "subjects[1].name: Required value",
        'subjects[1].apiGroup: Unsupported value: "": supported values: "rbac.authorization.k8s.io"',
        'subjects[2].name: Invalid value: "Bad_Name": ' + kinds.common.SUBDOMAIN_MSG,
        'subjects[2].apiGroup: Unsupported value: "rbac.authorization.k8s.io": supported values: ""',
    ]
    assert [c.field for c in rolebinding.validate({"metadata": {"name": "x"}, "roleRef": "edit"})] == [
        "roleRef"
    ]


def test_cluster_role_binding_only_cluster_roles_and_namespaced_accounts() -> None:
    binding = a_binding("Role", "pod-reader")
    binding["metadata"] = {"name": "everyone"}
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "builder"}]
    assert messages(clusterrolebinding.validate(binding)) == [
        'roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"',
        "subjects[0].namespace: Required value",
    ]


def test_role_ref_is_immutable_with_upstream_message() -> None:
    old = a_binding()
    new = a_binding("ClusterRole", "view")
    assert rolebinding.KIND.validate_update(copy.deepcopy(old), old) == []
    assert messages(rolebinding.KIND.validate_update(new, old)) == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", '
        'Name:"view"}: cannot change roleRef'
    ]
    changed_subjects = a_binding(subjects=[])
    assert clusterrolebinding.KIND.validate_update(changed_subjects, old) == []


def test_printing_as_kubectl() -> None:
    created = "2026-12-05T23:00:00Z"
    the_role = a_role()
    the_role["metadata"]["creationTimestamp"] = created
    table = printing.table(role.KIND, [the_role], "1")
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Created At"]
    assert table["rows"][0]["cells"] == ["pod-reader", created]
    binding = a_binding()
    binding["subjects"] += [
        {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "team-a"},
        {"kind": "User", "name": "bob"},
    ]
    for unit in (rolebinding.KIND, clusterrolebinding.KIND):
        table = printing.table(unit, [binding], "1")
        names = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
        assert names == [
            ("Name", 0),
            ("Role", 0),
            ("Age", 0),
            ("Users", 1),
            ("Groups", 1),
            ("ServiceAccounts", 1),
        ]
        cells = table["rows"][0]["cells"]
        assert cells[1] == "ClusterRole/edit"
        assert cells[3:] == ["alice, bob", "devs", "team-a/ci"]


def test_openapi_models_exist() -> None:
    for unit in (role.KIND, clusterrole.KIND, rolebinding.KIND, clusterrolebinding.KIND):
        assert "rules" in schemas.known_fields(unit.model) or "roleRef" in schemas.known_fields(unit.model)


def _varint(value: int) -> bytes:
    out = b""
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out += bytes([byte | 0x80])
        else:
            return out + bytes([byte])


def _field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def test_protobuf_cluster_role_with_aggregation() -> None:
    type_meta = _field(1, "rbac.authorization.k8s.io/v1") + _field(2, "ClusterRole")
    rule = _field(1, "get") + _field(1, "list") + _field(2, "") + _field(3, "pods")
    selector = _field(1, _field(1, "team") + _field(2, "a"))
    raw = _field(1, _field(1, "agg")) + _field(2, rule) + _field(3, _field(1, selector))
    body = b"k8s\x00" + _field(1, type_meta) + _field(2, raw)
    decoded = protobuf.decode(body)
    assert decoded["metadata"] == {"name": "agg"}
    assert decoded["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
    assert decoded["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {"team": "a"}}]}
