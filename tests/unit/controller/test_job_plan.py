"""Job accounting: parallelism, completions, back-off limit, deadline, suspend, conditions, TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nestlab.controller import completions, indexes
from nestlab.controller.job import job_pod

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
Obj = dict[str, Any]


def job(status: Obj | None = None, *, restart: str = "Never", **spec: Any) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi", "namespace": "demo", "uid": "job-uid"},
        "spec": {
            "template": {
                "metadata": {"labels": {"app": "pi"}},
                "spec": {"restartPolicy": restart, "containers": [{"name": "c", "image": "perl"}]},
            },
            **spec,
        },
        "status": status or {},
    }


def pod(
    n: int, phase: str = "Running", ready: bool = True, finished: str = "2026-12-05T11:59:00Z", **meta: Any
) -> Obj:
    return {
        "metadata": {"name": f"pi-{n}", "namespace": "demo", "uid": f"uid-{n}", **meta},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [
                {"name": "c", "restartCount": 0, "state": {"terminated": {"finishedAt": finished}}}
            ]
            if phase in ("Succeeded", "Failed")
            else [{"name": "c", "restartCount": 0}],
        },
    }


def types(plan: completions.JobPlan) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in plan.status.get("conditions", [])}


def test_new_job_starts_parallelism_pods() -> None:
    plan = completions.plan(job(completions=5, parallelism=2), [], NOW)
    assert plan.create == 2
    assert plan.status["startTime"] == "2026-12-05T12:00:00Z"
    assert (plan.status["active"], plan.status["succeeded"], plan.status["failed"]) == (0, 0, 0)


def test_never_more_active_than_parallelism_or_remaining() -> None:
    started = {"startTime": "2026-12-05T11:00:00Z"}
    spec: Obj = {"completions": 5, "parallelism": 2}
    assert completions.plan(job(started, **spec), [pod(1), pod(2)], NOW).create == 0
    done3 = [pod(i, "Succeeded", ready=False) for i in range(3)]
    assert completions.plan(job(started, **spec), [*done3, pod(4)], NOW).create == 1
    done4 = [pod(i, "Succeeded", ready=False) for i in range(4)]
    assert completions.plan(job(started, **spec), [*done4, pod(5)], NOW).create == 0
    plan = completions.plan(job(started, **spec), [*done4, pod(5), pod(6)], NOW)
    assert len(plan.delete) == 1  # one more than the single completion missing


def test_completion_conditions_and_time() -> None:
    done = [pod(i, "Succeeded", ready=False) for i in range(2)]
    plan = completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}, completions=2), done, NOW)
    assert types(plan) == {
        "SuccessCriteriaMet": ("True", "CompletionsReached"),
        "Complete": ("True", "CompletionsReached"),
    }
    complete = next(c for c in plan.status["conditions"] if c["type"] == "Complete")
    assert complete["message"] == "Reached expected number of succeeded pods"
    assert plan.status["completionTime"] == "2026-12-05T12:00:00Z"
    assert [n.reason for n in plan.events] == ["Completed"]
    assert completions.finished({"status": plan.status}) == "Complete"


def test_success_waits_for_leftover_pods_to_go() -> None:
    done = [pod(i, "Succeeded", ready=False) for i in range(2)]
    plan = completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}, completions=2), [*done, pod(9)], NOW)
    assert types(plan) == {"SuccessCriteriaMet": ("True", "CompletionsReached")}
    assert [p["metadata"]["name"] for p in plan.delete] == ["pi-9"]


def test_backoff_limit_exceeded() -> None:
    failed = [pod(i, "Failed", ready=False) for i in range(3)]
    plan = completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}, backoffLimit=2), failed, NOW)
    assert types(plan) == {
        "FailureTarget": ("True", "BackoffLimitExceeded"),
        "Failed": ("True", "BackoffLimitExceeded"),
    }
    assert plan.events[0] == completions.Note(
        "Warning", "BackoffLimitExceeded", "Job has reached the specified backoff limit"
    )
    assert "completionTime" not in plan.status
    # within the limit: a replacement, after the back-off
    two = failed[:2]
    assert completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}, backoffLimit=2), two, NOW).create == 1


def test_backoff_delay_doubles() -> None:
    recent = [pod(1, "Failed", ready=False, finished="2026-12-05T11:59:55Z")]
    plan = completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}), recent, NOW)
    assert (plan.create, plan.requeue_after) == (0, 5.0)  # 10 s after the failure
    two = [*recent, pod(2, "Failed", ready=False, finished="2026-12-05T11:59:50Z")]
    assert completions.backoff_left(two, NOW) == 15.0  # 20 s after the latest
    assert completions.backoff_left([], NOW) == 0.0


def test_on_failure_counts_restarts() -> None:
    restarting = pod(1)
    restarting["status"]["containerStatuses"][0]["restartCount"] = 2
    plan = completions.plan(
        job({"startTime": "2026-12-05T11:00:00Z"}, restart="OnFailure", backoffLimit=2), [restarting], NOW
    )
    assert types(plan)["FailureTarget"] == ("True", "BackoffLimitExceeded")
    assert [p["metadata"]["name"] for p in plan.delete] == ["pi-1"]
    assert "Failed" not in types(plan)  # until the pod is gone


def test_active_deadline() -> None:
    spec: Obj = {"activeDeadlineSeconds": 60}
    early = completions.plan(job({"startTime": "2026-12-05T11:59:30Z"}, **spec), [pod(1)], NOW)
    assert early.requeue_after == 30.0
    late = completions.plan(job({"startTime": "2026-12-05T11:58:00Z"}, **spec), [pod(1)], NOW)
    assert types(late)["FailureTarget"] == ("True", "DeadlineExceeded")
    gone = completions.plan(job({"startTime": "2026-12-05T11:58:00Z"}, **spec), [], NOW)
    failed = next(c for c in gone.status["conditions"] if c["type"] == "Failed")
    assert (failed["reason"], failed["message"]) == (
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
    )


def test_suspend_and_resume() -> None:
    plan = completions.plan(job({"startTime": "2026-12-05T11:00:00Z"}, suspend=True), [pod(1)], NOW)
    assert types(plan) == {"Suspended": ("True", "JobSuspended")}
    assert [p["metadata"]["name"] for p in plan.delete] == ["pi-1"]
    assert plan.create == 0
    resumed = completions.plan(job(plan.status), [], NOW + timedelta(minutes=5))
    assert types(resumed) == {"Suspended": ("False", "JobResumed")}
    assert resumed.status["startTime"] == "2026-12-05T12:05:00Z"
    assert resumed.create == 1


def test_work_queue_job_completes_after_first_success_and_all_done() -> None:
    spec: Obj = {"parallelism": 3}
    started = {"startTime": "2026-12-05T11:00:00Z"}
    assert completions.plan(job(started, **spec), [], NOW).create == 3
    plan = completions.plan(job(started, **spec), [pod(1, "Succeeded", ready=False), pod(2)], NOW)
    assert (plan.create, plan.delete) == (0, [])
    assert "Complete" not in types(plan)
    done = completions.plan(job(started, **spec), [pod(1, "Succeeded", ready=False)], NOW)
    assert types(done)["Complete"] == ("True", "CompletionsReached")


def test_finished_job_keeps_its_counts() -> None:
    status = {"succeeded": 5, "conditions": [{"type": "Complete", "status": "True"}]}
    assert completions.plan(job(status), [], NOW).status == status


def test_ttl_left() -> None:
    status = {
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "2026-12-05T11:59:00Z"}]
    }
    assert completions.ttl_left(job(status, ttlSecondsAfterFinished=100), NOW) == 40.0
    assert completions.ttl_left(job(status), NOW) is None
    assert completions.ttl_left(job({}, ttlSecondsAfterFinished=100), NOW) is None


def test_job_pod_labels_and_owner() -> None:
    created = job_pod(job())
    meta = created["metadata"]
    assert meta["generateName"] == "pi-"
    assert meta["labels"] == {
        "app": "pi",
        "batch.kubernetes.io/job-name": "pi",
        "job-name": "pi",
        "batch.kubernetes.io/controller-uid": "job-uid",
        "controller-uid": "job-uid",
    }
    assert meta["ownerReferences"][0] == {
        "apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "job-uid",
        "controller": True, "blockOwnerDeletion": True,
    }  # fmt: skip


def indexed_pod(n: int, index: int, phase: str = "Running") -> Obj:
    created = pod(n, phase, ready=phase == "Running")
    created["metadata"]["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    return created


def test_indexed_job_starts_the_lowest_missing_indexes() -> None:
    spec: Obj = {"completions": 4, "parallelism": 2, "completionMode": "Indexed"}
    started = {"startTime": "2026-12-05T11:00:00Z"}
    first = completions.plan(job(started, **spec), [], NOW)
    assert first.indexes == [0, 1]
    assert first.create == 2
    plan = completions.plan(job(started, **spec), [indexed_pod(1, 0, "Succeeded"), indexed_pod(2, 1)], NOW)
    assert plan.indexes == [2]
    assert (plan.status["succeeded"], plan.status["completedIndexes"]) == (1, "0")


def test_indexed_job_duplicates_are_deleted_and_completion_needs_every_index() -> None:
    spec: Obj = {"completions": 3, "parallelism": 3, "completionMode": "Indexed"}
    started = {"startTime": "2026-12-05T11:00:00Z"}
    dup = completions.plan(
        job(started, **spec), [indexed_pod(1, 0), indexed_pod(2, 0), indexed_pod(3, 1)], NOW
    )
    assert len(dup.delete) == 1
    assert dup.create == 0
    two_of_three = [
        indexed_pod(1, 0, "Succeeded"),
        indexed_pod(2, 0, "Succeeded"),
        indexed_pod(3, 2, "Succeeded"),
    ]
    plan = completions.plan(job(started, **spec), two_of_three, NOW)
    assert plan.status["completedIndexes"] == "0,2"
    assert plan.indexes == [1]
    done = completions.plan(job(started, **spec), [*two_of_three, indexed_pod(4, 1, "Succeeded")], NOW)
    assert done.status["completedIndexes"] == "0-2"
    assert types(done)["Complete"] == ("True", "CompletionsReached")


def test_compress_and_indexed_pod() -> None:
    assert indexes.compress({1, 3, 4, 5, 9}) == "1,3-5,9"
    assert indexes.compress(set()) == ""
    made = indexes.indexed_pod(job_pod(job()), "pi", 3)
    assert made["metadata"]["generateName"] == "pi-3-"
    assert made["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "3"
    assert made["spec"]["hostname"] == "pi-3"
    assert made["spec"]["containers"][0]["env"] == [{"name": "JOB_COMPLETION_INDEX", "value": "3"}]
    assert indexes.index_of(made) == 3


def test_pod_replacement_policy_failed_waits_for_terminating_pods() -> None:
    started = {"startTime": "2026-12-05T11:00:00Z"}
    going = pod(1, deletionTimestamp="2026-12-05T12:00:00Z")
    assert completions.plan(job(started), [going], NOW).create == 1  # default TerminatingOrFailed
    assert completions.plan(job(started, podReplacementPolicy="Failed"), [going], NOW).create == 0
