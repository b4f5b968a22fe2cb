"""Label and field selectors parse like upstream and refuse what they cannot honour."""

from __future__ import annotations

import pytest

from nestlab.api.selectors import compile_selector, parse_labels
from nestlab.api.status import ApiError

POD = {
    "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web", "tier": "front"}},
    "spec": {"nodeName": "esx-01"},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("labels", "fields", "matches"),
    [
        ("app=web", "", True),
        ("app==web", "", True),
        ("app!=web", "", False),
        ("app in (web, api)", "", True),
        ("app notin (web)", "", False),
        ("tier", "", True),
        ("!tier", "", False),
        ("missing!=x", "", True),
        ("app=web,tier=back", "", False),
        ("", "spec.nodeName=esx-01", True),
        ("", "spec.nodeName=", False),
        ("", "status.phase!=Running", False),
        ("", "metadata.name=web,metadata.namespace=demo", True),
        ("app=web", "metadata.name==other", False),
    ],
)
def test_selectors_match_like_upstream(labels: str, fields: str, matches: bool) -> None:
    assert compile_selector(labels, fields, "pods")(POD) is matches


def test_unscheduled_pods_match_empty_node_name() -> None:
    pending = {"metadata": {"name": "p"}, "spec": {}}
    assert compile_selector("", "spec.nodeName=", "pods")(pending)


@pytest.mark.parametrize(
    ("spec", "selector", "matches"),
    [
        ({}, "spec.unschedulable=false", True),  # unset reads as upstream's Go zero value
        ({}, "spec.unschedulable!=true", True),
        ({}, "spec.unschedulable=true", False),
        ({"unschedulable": False}, "spec.unschedulable=false", True),
        ({"unschedulable": True}, "spec.unschedulable=false", False),
        ({"unschedulable": True}, "spec.unschedulable=true", True),
    ],
)
def test_node_unschedulable_defaults_to_false(spec: dict[str, bool], selector: str, matches: bool) -> None:
    node = {"metadata": {"name": "esx-01"}, "spec": spec}
    assert compile_selector("", selector, "nodes")(node) is matches


@pytest.mark.parametrize("text", ["app in web", "=web", "app=(a,b)", "!app=web"])
def test_bad_label_selectors_are_400(text: str) -> None:
    with pytest.raises(ApiError) as error:
        parse_labels(text)
    assert error.value.code == 400


def test_unknown_field_selector_is_400_naming_the_field() -> None:
    with pytest.raises(ApiError) as error:
        compile_selector("", "spec.hostname=x", "pods")
    assert error.value.code == 400
    assert error.value.message.startswith("field label not supported: spec.hostname")


def test_event_field_selectors_used_by_kubectl_describe() -> None:
    event = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web", "uid": "u1"}}
    predicate = compile_selector(
        "", "involvedObject.name=web,involvedObject.kind=Pod,involvedObject.uid=u1", "events"
    )
    assert predicate(event)
