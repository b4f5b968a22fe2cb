"""The fast JSON codec reads and writes what the stdlib does, and falls back where orjson cannot."""

from __future__ import annotations

import json

from nestlab.api import jsoncodec

POD = {"metadata": {"name": "wéb-0", "labels": {"b": "2", "a": "1"}}, "spec": {"n": [1, 2.5, None, True]}}


def test_what_it_writes_the_stdlib_reads_back_and_sorted_keys_store_equal_bytes() -> None:
    assert json.loads(jsoncodec.dumps(POD)) == POD
    reordered = {"spec": POD["spec"], "metadata": {"labels": {"a": "1", "b": "2"}, "name": "wéb-0"}}
    assert jsoncodec.dumps(POD, sort_keys=True) == jsoncodec.dumps(reordered, sort_keys=True)
    assert jsoncodec.dumps(POD, sort_keys=True) == json.dumps(
        POD, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def test_what_the_stdlib_wrote_it_reads() -> None:
    assert jsoncodec.loads(json.dumps(POD)) == POD  # ASCII with \\u escapes, as stored before
    assert jsoncodec.loads(json.dumps(POD).encode()) == POD


def test_values_orjson_cannot_encode_fall_back_to_the_stdlib() -> None:
    huge = {"n": 2**70, 3: "int key"}
    assert json.loads(jsoncodec.dumps(huge)) == {"n": 2**70, "3": "int key"}


def test_a_copy_shares_nothing_with_the_original() -> None:
    copied = jsoncodec.copy(POD)
    assert copied == POD
    copied["metadata"]["labels"]["a"] = "changed"
    copied["spec"]["n"].append(3)
    assert POD["metadata"]["labels"]["a"] == "1"
    assert POD["spec"]["n"] == [1, 2.5, None, True]


def test_default_turns_unknown_types_into_json() -> None:
    class Stamp:
        def __str__(self) -> str:
            return "2026-12-07T05:00:00Z"

    assert json.loads(jsoncodec.dumps({"at": Stamp()}, default=str)) == {"at": "2026-12-07T05:00:00Z"}
