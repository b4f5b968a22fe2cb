"""Merge, strategic merge and JSON patches behave as kubectl expects."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.api.patch import apply_patch, json_patch, merge_patch, strategic_merge
from nestlab.api.status import ApiError

POD: dict[str, Any] = {
    "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
    "spec": {
        "containers": [
            {"name": "one", "image": "busybox:1", "env": [{"name": "A", "value": "1"}]},
            {"name": "two", "image": "busybox:2"},
        ],
        "tolerations": [{"key": "k"}],
    },
}


def test_merge_patch_merges_maps_replaces_lists_and_deletes_nulls() -> None:
    out = merge_patch(POD, {"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"tolerations": []}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert out["spec"]["tolerations"] == []
    assert out["spec"]["containers"] == POD["spec"]["containers"]


def test_strategic_merge_merges_containers_by_name() -> None:
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "one"}, {"name": "two"}],
            "containers": [{"name": "two", "image": "busybox:3"}, {"name": "three", "image": "x"}],
        }
    }
    out = strategic_merge(POD, patch)
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [
        ("one", "busybox:1"),
        ("two", "busybox:3"),
        ("three", "x"),
    ]
    assert out["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]


def test_strategic_merge_directives() -> None:
    deleted = strategic_merge(POD, {"spec": {"containers": [{"name": "one", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["two"]
    replaced = strategic_merge(POD, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert replaced["metadata"]["labels"] == {"z": "9"}
    finalizers = strategic_merge(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert finalizers["metadata"]["finalizers"] == []
    added = strategic_merge(POD, {"metadata": {"finalizers": ["y"]}})
    assert added["metadata"]["finalizers"] == ["x", "y"]


def test_strategic_merge_needs_the_merge_key() -> None:
    with pytest.raises(ApiError) as error:
        strategic_merge(POD, {"spec": {"containers": [{"image": "no-name"}]}})
    assert error.value.code == 400


def test_json_patch_operations() -> None:
    ops = [
        {"op": "replace", "path": "/spec/containers/0/image", "value": "busybox:9"},
        {"op": "add", "path": "/metadata/labels/c~1d", "value": "3"},
        {"op": "remove", "path": "/metadata/labels/a"},
        {"op": "test", "path": "/metadata/name", "value": "web"},
        {"op": "copy", "from": "/metadata/name", "path": "/metadata/labels/name"},
        {"op": "add", "path": "/spec/tolerations/-", "value": {"key": "k2"}},
    ]
    out = json_patch(POD, ops)
    assert out["spec"]["containers"][0]["image"] == "busybox:9"
    assert out["metadata"]["labels"] == {"b": "2", "c/d": "3", "name": "web"}
    assert out["spec"]["tolerations"][-1] == {"key": "k2"}
    assert POD["metadata"]["labels"] == {"a": "1", "b": "2"}  # the input is not modified


@pytest.mark.parametrize(
    ("ops", "code"),
    [
        ({"op": "add"}, 400),
        ([{"op": "remove", "path": "/nope"}], 422),
        ([{"op": "test", "path": "/metadata/name", "value": "other"}], 422),
        ([{"op": "frobnicate", "path": "/a"}], 400),
        ([{"op": "add", "path": "no-slash", "value": 1}], 400),
    ],
)
def test_json_patch_failures(ops: Any, code: int) -> None:
    with pytest.raises(ApiError) as error:
        json_patch(POD, ops)
    assert error.value.code == code


def test_unknown_patch_type_is_415() -> None:
    with pytest.raises(ApiError) as error:
        apply_patch("application/apply-patch+yaml", POD, {})
    assert error.value.code == 415
