"""Lease claims: take a free or expired Lease, renew our own, respect a valid holder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from nestlab.controller.leader import LeaseConfig, claim, micro_time, parse_time

NOW = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
ME = LeaseConfig("cp-1", duration=15)


def held_by(holder: str, renewed: datetime, transitions: int = 0) -> dict[str, object]:
    return {
        "metadata": {"name": "nestlab-scheduler", "resourceVersion": "7"},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": micro_time(renewed),
            "renewTime": micro_time(renewed),
            "leaseTransitions": transitions,
        },
    }


def test_no_lease_is_created_for_us() -> None:
    lease = claim(None, ME, NOW)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "cp-1"
    assert lease["spec"]["leaseTransitions"] == 0
    assert parse_time(lease["spec"]["renewTime"]) == NOW


def test_valid_holder_is_respected() -> None:
    assert claim(held_by("cp-2", NOW - timedelta(seconds=14)), ME, NOW) is None


def test_expired_holder_is_replaced_and_transition_counted() -> None:
    lease = claim(held_by("cp-2", NOW - timedelta(seconds=16), transitions=3), ME, NOW)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "cp-1"
    assert lease["spec"]["leaseTransitions"] == 4
    assert lease["metadata"]["resourceVersion"] == "7"  # the write is a compare-and-swap


def test_own_lease_is_renewed_without_transition() -> None:
    before = held_by("cp-1", NOW - timedelta(seconds=5), transitions=2)
    lease = claim(before, ME, NOW)
    assert lease is not None
    assert lease["spec"]["renewTime"] == micro_time(NOW)
    assert lease["spec"]["acquireTime"] == before["spec"]["acquireTime"]  # type: ignore[index]
    assert lease["spec"]["leaseTransitions"] == 2


def test_released_lease_is_free() -> None:
    lease = claim(held_by("", NOW), ME, NOW)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == "cp-1"
