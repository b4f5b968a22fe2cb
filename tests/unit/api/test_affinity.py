"""Validation of the terms placement reads (nestlab.api.affinity): upstream's paths and messages.

The causes are the ones kube-apiserver gives for the same pod spec; the scheduler is what these
checks protect. The last test covers label selector matching (nestlab.api.matching), the reading
of the selectors validated here.
"""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api import affinity, matching
from nestlab.api.status import Cause

Obj = dict[str, Any]
REQ = "requiredDuringSchedulingIgnoredDuringExecution"
PREF = "preferredDuringSchedulingIgnoredDuringExecution"
NA = f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms[0]"


def node_affinity(*requirements: Obj, fields: bool = False) -> Obj:
    kind = "matchFields" if fields else "matchExpressions"
    return {"nodeAffinity": {REQ: {"nodeSelectorTerms": [{kind: list(requirements)}]}}}


def pod_term(**extra: Any) -> Obj:
    return {
        "labelSelector": {"matchLabels": {"app": "web"}},
        "topologyKey": "kubernetes.io/hostname",
        **extra,
    }


VALID = {
    "nodeAffinity": {
        REQ: {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["esx-01"]}]},
            ]
        },
        PREF: [
            {
                "weight": 1,
                "preference": {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]},
            }
        ],
    },
    "podAffinity": {
        REQ: [pod_term()],
        PREF: [{"weight": 100, "podAffinityTerm": pod_term(namespaces=["demo"])}],
    },
    "podAntiAffinity": {REQ: [pod_term(namespaceSelector={}, matchLabelKeys=["hash"])]},
}


def test_valid_affinity_has_no_causes() -> None:
    assert affinity.check_affinity(VALID) == []
    assert affinity.check_affinity(None) == []


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("x", [Cause("spec.affinity", "Invalid value: must be an object", "FieldValueTypeInvalid")]),
        (
            {"nodeAffinity": {REQ: {"nodeSelectorTerms": []}}},
            [
                Cause(
                    f"spec.affinity.nodeAffinity.{REQ}.nodeSelectorTerms",
                    "Required value: must have at least one node selector term",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            node_affinity({"key": "disk", "operator": "In"}),
            [
                Cause(
                    f"{NA}.matchExpressions[0].values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            node_affinity({"key": "disk", "operator": "Exists", "values": ["a"]}),
            [
                Cause(
                    f"{NA}.matchExpressions[0].values",
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    "FieldValueForbidden",
                )
            ],
        ),
        (
            node_affinity({"key": "cores", "operator": "Gt", "values": ["1", "2"]}),
            [
                Cause(
                    f"{NA}.matchExpressions[0].values",
                    "Required value: must be specified single value when `operator` is 'Lt' or 'Gt'",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            node_affinity({"key": "disk", "operator": "Near", "values": ["a"]}),
            [
                Cause(
                    f"{NA}.matchExpressions[0].operator",
                    'Invalid value: "Near": not a valid selector operator',
                )
            ],
        ),
        (
            node_affinity({"key": "metadata.uid", "operator": "In", "values": ["a"]}, fields=True),
            [
                Cause(
                    f"{NA}.matchFields[0].key",
                    'Invalid value: "metadata.uid": not a valid field selector key',
                )
            ],
        ),
        (
            node_affinity({"key": "metadata.name", "operator": "In", "values": ["a", "b"]}, fields=True),
            [
                Cause(
                    f"{NA}.matchFields[0].values",
                    "Required value: must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            {"nodeAffinity": {PREF: [{"weight": 0, "preference": {}}]}},
            [
                Cause(
                    f"spec.affinity.nodeAffinity.{PREF}[0].weight",
                    "Invalid value: 0: must be in the range 1-100",
                )
            ],
        ),
        (
            {"podAffinity": {PREF: [{"weight": 101, "podAffinityTerm": pod_term()}]}},
            [
                Cause(
                    f"spec.affinity.podAffinity.{PREF}[0].weight",
                    "Invalid value: 101: must be in the range 1-100",
                )
            ],
        ),
        (
            {"podAntiAffinity": {REQ: [pod_term(topologyKey="")]}},
            [
                Cause(
                    f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey",
                    "Required value: can not be empty",
                    "FieldValueRequired",
                ),
                Cause(
                    f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey",
                    'Invalid value: "": name part must be non-empty',
                ),
                Cause(
                    f"spec.affinity.podAntiAffinity.{REQ}[0].topologyKey",
                    "Invalid value: \"\": name part must consist of alphanumeric characters, '-', '_' or '.', and "
                    "must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', "
                    "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                ),
            ],
        ),
        (
            {"podAffinity": {REQ: [pod_term(namespaces=["Bad_NS"])]}},
            [
                Cause(
                    f"spec.affinity.podAffinity.{REQ}[0].namespace",
                    'Invalid value: "Bad_NS": a lowercase RFC 1123 label must consist of lower case alphanumeric '
                    "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
                    "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ],
        ),
        (
            {"podAffinity": {REQ: [{"topologyKey": "zone", "matchLabelKeys": ["hash"]}]}},
            [
                Cause(
                    f"spec.affinity.podAffinity.{REQ}[0].matchLabelKeys",
                    "Forbidden: must not be specified when labelSelector is not set",
                    "FieldValueForbidden",
                )
            ],
        ),
        (
            {"podAffinity": {REQ: [pod_term(matchLabelKeys=["h"], mismatchLabelKeys=["h"])]}},
            [
                Cause(
                    f"spec.affinity.podAffinity.{REQ}[0].matchLabelKeys[0]",
                    'Invalid value: "h": exists in both matchLabelKeys and mismatchLabelKeys',
                )
            ],
        ),
        (
            {
                "podAffinity": {
                    REQ: [pod_term(labelSelector={"matchExpressions": [{"key": "a", "operator": "In"}]})]
                }
            },
            [
                Cause(
                    f"spec.affinity.podAffinity.{REQ}[0].labelSelector.matchExpressions[0].values",
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'",
                    "FieldValueRequired",
                )
            ],
        ),
        (
            {"podAntiAffinity": {REQ: "all"}},
            [
                Cause(
                    f"spec.affinity.podAntiAffinity.{REQ}",
                    "Invalid value: must be a list",
                    "FieldValueTypeInvalid",
                )
            ],
        ),
    ],
)
def test_affinity_causes(spec: Any, expected: list[Cause]) -> None:
    assert affinity.check_affinity(spec) == expected


def constraint(**extra: Any) -> Obj:
    return {
        "maxSkew": 1,
        "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}},
        **extra,
    }


TSC = "spec.topologySpreadConstraints[0]"


@pytest.mark.parametrize(
    ("constraints", "expected"),
    [
        ([constraint(), constraint(whenUnsatisfiable="ScheduleAnyway", minDomains=None)], []),
        ([constraint(maxSkew=0)], [Cause(f"{TSC}.maxSkew", "Invalid value: 0: must be greater than zero")]),
        (
            [constraint(topologyKey="")],
            [Cause(f"{TSC}.topologyKey", "Required value: can not be empty", "FieldValueRequired")],
        ),
        (
            [constraint(whenUnsatisfiable="Sometimes")],
            [
                Cause(
                    f"{TSC}.whenUnsatisfiable",
                    'Unsupported value: "Sometimes": supported values: "DoNotSchedule", "ScheduleAnyway"',
                    "FieldValueNotSupported",
                )
            ],
        ),
        (
            [constraint(), constraint(maxSkew=2)],
            [
                Cause(
                    f"{TSC}.{{topologyKey, whenUnsatisfiable}}",
                    'Duplicate value: "{zone, DoNotSchedule}"',
                    "FieldValueDuplicate",
                )
            ],
        ),
        (
            [constraint(minDomains=0)],
            [Cause(f"{TSC}.minDomains", "Invalid value: 0: must be greater than zero")],
        ),
        (
            [constraint(minDomains=2, whenUnsatisfiable="ScheduleAnyway")],
            [
                Cause(
                    f"{TSC}.minDomains",
                    "Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule, not ScheduleAnyway",
                )
            ],
        ),
        (
            [constraint(nodeTaintsPolicy="Sometimes")],
            [
                Cause(
                    f"{TSC}.nodeTaintsPolicy",
                    'Unsupported value: "Sometimes": supported values: "Honor", "Ignore"',
                    "FieldValueNotSupported",
                )
            ],
        ),
        (
            [constraint(matchLabelKeys=["app"])],
            [
                Cause(
                    f"{TSC}.matchLabelKeys[0]",
                    'Invalid value: "app": exists in both matchLabelKeys and labelSelector',
                )
            ],
        ),
        (
            [constraint(labelSelector={"matchLabels": {"app": "-web"}})],
            [
                Cause(
                    f"{TSC}.labelSelector.matchLabels",
                    'Invalid value: "-web": a valid label must be an empty string or consist of alphanumeric '
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                    "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            ],
        ),
        (
            "x",
            [
                Cause(
                    "spec.topologySpreadConstraints", "Invalid value: must be a list", "FieldValueTypeInvalid"
                )
            ],
        ),
        (
            [constraint(maxSkew="1")],
            [Cause(f"{TSC}.maxSkew", "Invalid value: must be an integer", "FieldValueTypeInvalid")],
        ),
    ],
)
def test_topology_spread_causes(constraints: Any, expected: list[Cause]) -> None:
    for item in constraints if isinstance(constraints, list) else []:
        if item.get("minDomains", 1) is None:
            del item["minDomains"]
    assert affinity.check_topology_spread(constraints) == expected


@pytest.mark.parametrize(
    ("key", "messages"),
    [
        ("example.com/disk", []),
        ("a/b/c", ["a qualified name must consist of"]),
        ("/disk", ["prefix part must be non-empty"]),
        ("Example.com/disk", ["prefix part a lowercase RFC 1123 subdomain"]),
        ("x" * 64, ["name part must be no more than 63 characters"]),
    ],
)
def test_label_names(key: str, messages: list[str]) -> None:
    causes = affinity.check_label_selector({"matchExpressions": [{"key": key, "operator": "Exists"}]}, "s")
    assert len(causes) == len(messages)
    for cause, message in zip(causes, messages, strict=True):
        assert cause.message.startswith(f'Invalid value: "{key}": {message}')


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        (None, {"a": "1"}, False),
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}, {"a": "2"}, False),
    ],
)
def test_label_selector_matches(selector: Obj | None, labels: dict[str, str], matches: bool) -> None:
    assert matching.label_selector_matches(selector, labels) is matches
