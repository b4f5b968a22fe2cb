"""CronJob decisions: when a Job is due, its name, concurrency policies, deadlines, history, status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller import cronjob

CREATED = datetime(2026, 12, 5, 11, 59, 30, tzinfo=UTC)
Obj = dict[str, Any]


def cj(status: Obj | None = None, **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": "hello", "namespace": "demo", "uid": "cj-uid", "creationTimestamp": "2026-12-05T11:59:30Z",
        },
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"team": "a"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}},
            },
            **spec,
        },
        "status": status or {},
    }  # fmt: skip


def job(name: str, state: str | None = None, start: str = "2026-12-05T11:00:00Z", done: str = "") -> Obj:
    status: Obj = {"startTime": start}
    if state:
        status["conditions"] = [{"type": state, "status": "True"}]
    if state == "Complete":
        status["completionTime"] = done or start
    return {"metadata": {"name": name, "namespace": "demo", "uid": f"uid-{name}"}, "status": status}


def test_nothing_before_the_first_minute_then_a_job_at_the_boundary() -> None:
    early = cronjob.plan(cj(), [], CREATED + timedelta(seconds=29))
    assert early.create is None
    assert early.requeue_after is not None
    assert abs(early.requeue_after - 1.1) < 1e-6  # the next minute boundary, plus upstream's 100 ms
    due = cronjob.plan(cj(), [], datetime(2026, 12, 5, 12, 0, 0, 100000, tzinfo=UTC))
    assert due.create is not None
    minutes = int(datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()) // 60
    assert due.create["metadata"]["name"] == f"hello-{minutes}"
    assert due.create["metadata"]["labels"] == {"team": "a"}
    assert due.create["metadata"]["annotations"] == {
        "batch.kubernetes.io/cronjob-scheduled-timestamp": "2026-12-05T12:00:00Z"
    }
    assert due.create["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert due.create["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert due.status["lastScheduleTime"] == "2026-12-05T12:00:00Z"


def test_a_time_already_run_is_not_run_again() -> None:
    ran = cj({"lastScheduleTime": "2026-12-05T12:00:00Z"})
    assert cronjob.plan(ran, [], datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)).create is None


def test_only_the_most_recent_missed_time_runs() -> None:
    result = cronjob.plan(cj(), [], datetime(2026, 12, 5, 12, 5, 10, tzinfo=UTC))
    assert result.create is not None
    assert result.status["lastScheduleTime"] == "2026-12-05T12:05:00Z"


def test_starting_deadline_missed() -> None:
    late = cronjob.plan(
        cj({"lastScheduleTime": "2026-12-05T11:00:00Z"}, schedule="0 * * * *", startingDeadlineSeconds=30),
        [],
        datetime(2026, 12, 5, 12, 1, 0, tzinfo=UTC),
    )
    assert late.create is None
    assert [n.reason for n in late.events] == []  # 12:00 is outside the 30 s window: not even considered
    result = cronjob.plan(
        cj({"lastScheduleTime": "2026-12-05T11:00:00Z"}, schedule="0 * * * *", startingDeadlineSeconds=90),
        [],
        datetime(2026, 12, 5, 12, 1, 0, tzinfo=UTC),
    )
    assert result.create is not None


def test_forbid_and_replace() -> None:
    running = job("hello-1")
    active = {"active": [{"name": "hello-1", "kind": "Job"}]}
    now = datetime(2026, 12, 5, 12, 0, 5, tzinfo=UTC)
    forbid = cronjob.plan(cj(active, concurrencyPolicy="Forbid"), [running], now)
    assert forbid.create is None
    assert [n.reason for n in forbid.events] == ["JobAlreadyActive"]
    replace = cronjob.plan(cj(active, concurrencyPolicy="Replace"), [running], now)
    assert replace.create is not None
    assert [j["metadata"]["name"] for j in replace.replace] == ["hello-1"]
    allow = cronjob.plan(cj(active), [running], now)
    assert allow.create is not None
    assert allow.replace == []


def test_suspend() -> None:
    assert cronjob.plan(cj(suspend=True), [], datetime(2026, 12, 5, 12, 5, tzinfo=UTC)).create is None


def test_active_tracking_and_last_successful_time() -> None:
    status = {"active": [{"name": "hello-1"}, {"name": "hello-2"}, {"name": "gone"}]}
    jobs = [job("hello-1", "Complete", done="2026-12-05T11:01:00Z"), job("hello-2"), job("hello-3")]
    result = cronjob.plan(cj(status, suspend=True), jobs, datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
    assert [r["name"] for r in result.status["active"]] == ["hello-2", "hello-3"]
    assert result.status["lastSuccessfulTime"] == "2026-12-05T11:01:00Z"
    reasons = {n.reason: n.message for n in result.events}
    assert reasons["SawCompletedJob"] == "Saw completed job: hello-1, status: Complete"
    assert reasons["MissingJob"] == "Active job went missing: gone"


def test_history_limits() -> None:
    done = [job(f"ok-{i}", "Complete", start=f"2026-12-05T11:0{i}:00Z") for i in range(5)]
    failed = [job(f"bad-{i}", "Failed", start=f"2026-12-05T11:0{i}:00Z") for i in range(3)]
    result = cronjob.plan(cj(suspend=True), done + failed, datetime(2026, 12, 5, 12, 0, tzinfo=UTC))
    assert [j["metadata"]["name"] for j in result.prune] == ["ok-0", "ok-1", "bad-0", "bad-1"]
    custom = cronjob.plan(
        cj(suspend=True, successfulJobsHistoryLimit=0, failedJobsHistoryLimit=3),
        done + failed,
        datetime(2026, 12, 5, 12, 0, tzinfo=UTC),
    )
    assert len(custom.prune) == 5


def test_time_zone_and_bad_schedule() -> None:
    berlin = cronjob.plan(
        cj(schedule="0 13 * * *", timeZone="Europe/Berlin"), [], datetime(2026, 12, 6, 12, 0, 1, tzinfo=UTC)
    )
    assert berlin.create is not None
    assert (
        berlin.create["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        == "2026-12-06T13:00:00+01:00"
    )
    bad = cronjob.plan(cj(schedule="61 * * * *"), [], datetime(2026, 12, 6, tzinfo=UTC))
    assert bad.create is None
    assert bad.events[0].reason == "UnparseableSchedule"
    assert (
        cronjob.plan(cj(timeZone="Nowhere/City"), [], datetime(2026, 12, 6, tzinfo=UTC)).events[0].reason
        == "UnknownTimeZone"
    )
