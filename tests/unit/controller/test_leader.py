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


class _FlakyLeases:
    """A Lease store whose reads fail with a chosen error (an API failover, or a lost race)."""

    def __init__(self) -> None:
        self.lease: dict[str, object] | None = None
        self.error: int = 0

    async def get(self, _resource: object, _namespace: str, _name: str) -> dict[str, object]:
        from nestlab.api.status import ApiError

        if self.error:
            raise ApiError(self.error, "ServiceUnavailable" if self.error == 503 else "Conflict", "failed")
        if self.lease is None:
            raise ApiError(404, "NotFound", "not found")
        return self.lease

    async def create(self, _resource: object, _namespace: str, obj: dict[str, object]) -> dict[str, object]:
        self.lease = obj
        return obj

    async def replace(self, _resource: object, _namespace: str, obj: dict[str, object]) -> dict[str, object]:
        self.lease = obj
        return obj


def test_a_failed_renewal_keeps_leading_until_the_renew_deadline() -> None:
    import asyncio

    from nestlab.controller.leader import LeaderElector, LeaseConfig

    store = _FlakyLeases()
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    elector = LeaderElector(store, LeaseConfig("me", duration=15), clock=lambda: now[0])  # type: ignore[arg-type]
    assert asyncio.run(elector.ensure())
    store.error = 503
    now[0] += timedelta(seconds=9)
    assert asyncio.run(elector.ensure())  # within 10 s of the last renewal: still leading
    now[0] += timedelta(seconds=2)
    assert not asyncio.run(elector.ensure())  # past the deadline: stop acting before anyone may take over
    store.error = 0
    assert asyncio.run(elector.ensure())
    store.error = 409
    assert not asyncio.run(elector.ensure())  # a conflict means someone else won: at once
