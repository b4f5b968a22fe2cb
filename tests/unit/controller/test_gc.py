"""Garbage collector decisions (upstream attemptToDeleteItem / classifyReferences)."""

from __future__ import annotations

from typing import Any

from nestlab.controller.gc import (
    DANGLING,
    FOREGROUND,
    ORPHAN,
    SOLID,
    WAITING,
    Decision,
    blocking,
    classify,
    decide,
)

Obj = dict[str, Any]
REF = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1"}


def obj(finalizers: list[str] | None = None) -> Obj:
    return {"metadata": {"name": "p", "uid": "p1", "finalizers": finalizers or [], "ownerReferences": [REF]}}


def test_classify() -> None:
    assert classify(REF, None) == DANGLING
    assert classify(REF, {"metadata": {"uid": "other"}}) == DANGLING  # same name, new object: gone
    assert classify(REF, {"metadata": {"uid": "u1"}}) == SOLID
    deleting = {"metadata": {"uid": "u1", "deletionTimestamp": "t", "finalizers": [FOREGROUND]}}
    assert classify(REF, deleting) == WAITING
    assert (
        classify(REF, {"metadata": {"uid": "u1", "deletionTimestamp": "t", "finalizers": [ORPHAN]}}) == SOLID
    )


def test_no_owners_or_a_solid_owner_keeps_it() -> None:
    assert decide(obj(), {}, False) == Decision("keep")
    assert decide(obj(), {"u1": SOLID}, False) == Decision("keep")


def test_solid_owner_left_only_drops_the_other_references() -> None:
    assert decide(obj(), {"u1": SOLID, "u2": DANGLING, "u3": WAITING}, False) == Decision(
        "drop-refs", ("u2", "u3")
    )


def test_all_owners_gone_deletes_in_background() -> None:
    assert decide(obj(), {"u1": DANGLING}, False) == Decision("delete", policy="Background")


def test_waiting_owner_with_grandchildren_deletes_in_foreground() -> None:
    assert decide(obj(), {"u1": WAITING}, True) == Decision("delete", policy="Foreground")
    assert decide(obj(), {"u1": WAITING}, False) == Decision("delete", policy="Background")


def test_existing_finalizers_choose_the_policy() -> None:
    assert decide(obj([ORPHAN]), {"u1": DANGLING}, True).policy == "Orphan"
    assert decide(obj([FOREGROUND]), {"u1": DANGLING}, False).policy == "Foreground"


def test_blocking_dependents() -> None:
    held = {"metadata": {"ownerReferences": [{**REF, "blockOwnerDeletion": True}]}}
    loose = {"metadata": {"ownerReferences": [{**REF, "blockOwnerDeletion": False}]}}
    assert blocking([held, loose], "u1") == [held]
    assert blocking([held], "other") == []
