"""The StatefulSet, Job and CronJob controllers against the REAL etcd + API server.

The controllers run in-process on their shared informers (a leadership term of
:mod:`nestlab.controller.manager`, in a thread with its own event loop). There is no node agent
here: the test plays the kubelet, patching pod status to Running/Ready or Succeeded/Failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.cronjob import CronJobController
from nestlab.controller.gc import GarbageCollector
from nestlab.controller.informer import InformerFactory
from nestlab.controller.job import JobController
from nestlab.controller.manager import Term
from nestlab.controller.statefulset import StatefulSetController
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, wait_until, write_kubeconfig

pytestmark = pytest.mark.integration
NS = "batch-stateful"
PODS = f"/api/v1/namespaces/{NS}/pods"
STS = f"/apis/apps/v1/namespaces/{NS}/statefulsets"
JOBS = f"/apis/batch/v1/namespaces/{NS}/jobs"
CRONJOBS = f"/apis/batch/v1/namespaces/{NS}/cronjobs"
REVISIONS = f"/apis/apps/v1/namespaces/{NS}/controllerrevisions"


class FrozenClock:
    """The CronJob controller's clock: stopped where a test sets it, so exactly the scheduled
    times the test chose are due (a running clock ahead of real time lets the next minute come
    seconds after the first, and a loaded machine then sees two Jobs)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


CLOCK = FrozenClock()
MODERN_KUBECTL = Path("/usr/lib/google-cloud-sdk/bin/kubectl.1.33")


@pytest.fixture(scope="module")
def controllers(apiserver: ApiServer) -> Iterator[None]:
    """A namespace, and the three controllers (and the garbage collector, for TTL deletion) running
    on real informers until the module ends."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="controllers", daemon=True)
    thread.start()

    def cronjobs(client: ApiClient, informers: InformerFactory) -> CronJobController:
        return CronJobController(client, informers, clock=CLOCK)

    async def start() -> tuple[ApiClient, Term]:
        client = ApiClient(Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN))
        term = Term(client, [StatefulSetController, JobController, cronjobs, GarbageCollector])
        term.start()
        return client, term

    client, term = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield
    finally:

        async def stop() -> None:
            await term.stop()
            await client.close()
            await loop.shutdown_asyncgens()  # the cancelled watches' generators close their responses
            await asyncio.sleep(0.25)  # aiohttp: let the TLS transports finish closing

        asyncio.run_coroutine_threadsafe(stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        apiserver.request("DELETE", f"/api/v1/namespaces/{NS}")


def get(apiserver: ApiServer, path: str) -> dict[str, Any] | None:
    code, body = apiserver.request("GET", path)
    if code == 404:
        return None
    assert code == 200, body
    return dict(body)


def pods(apiserver: ApiServer, selector: str) -> list[dict[str, Any]]:
    code, body = apiserver.request("GET", f"{PODS}?labelSelector={selector}")
    assert code == 200, body
    return list(body["items"])


def kubelet(apiserver: ApiServer, name: str, phase: str, ready: bool) -> None:
    """What the node agent would report: the pod's phase and Ready condition."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    condition = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}
    patch = {"status": {"phase": phase, "conditions": [condition]}}
    code, body = apiserver.request(
        "PATCH", f"{PODS}/{name}/status", patch, content_type="application/merge-patch+json"
    )
    assert code == 200, body


def statefulset(image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": image}]},
            },
        },
    }


def names(apiserver: ApiServer) -> list[str]:
    return sorted(p["metadata"]["name"] for p in pods(apiserver, "app=web"))


def test_statefulset_ordered_start_same_name_recreation_and_rolling_update(
    apiserver: ApiServer, controllers: None
) -> None:
    code, body = apiserver.request("POST", STS, statefulset("web:1"))
    assert code == 201, body
    for ordinal in range(3):
        name = f"web-{ordinal}"
        wait_until(lambda n=name: n in names(apiserver), f"{name} created", timeout=60)

        def counted(expected: int = ordinal + 1) -> bool:
            sts = get(apiserver, f"{STS}/web") or {}
            return bool((sts.get("status") or {}).get("replicas") == expected)

        wait_until(counted, f"status.replicas = {ordinal + 1}", timeout=30)
        assert names(apiserver) == [f"web-{i}" for i in range(ordinal + 1)]  # the next waits for this one
        kubelet(apiserver, name, "Running", ready=True)

    def ready() -> bool:
        status = (get(apiserver, f"{STS}/web") or {}).get("status") or {}
        return status.get("readyReplicas") == 3 and status.get("currentRevision") == status.get(
            "updateRevision"
        )

    wait_until(ready, "3 ready replicas", timeout=60)
    web1 = get(apiserver, f"{PODS}/web-1")
    assert web1 is not None
    status = (get(apiserver, f"{STS}/web") or {})["status"]
    labels = web1["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    assert labels["controller-revision-hash"] == status["updateRevision"]
    assert (web1["spec"]["hostname"], web1["spec"]["subdomain"]) == ("web-1", "web")
    owner = web1["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("StatefulSet", "web", True)
    revision = get(apiserver, f"{REVISIONS}/{status['updateRevision']}")
    assert revision is not None
    assert revision["revision"] == 1
    assert revision["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == "web:1"

    # A deleted pod comes back under the same name (a new pod: new UID).
    old_uid = web1["metadata"]["uid"]
    assert apiserver.request("DELETE", f"{PODS}/web-1?gracePeriodSeconds=0")[0] == 200

    def replaced(name: str, uid: str) -> bool:
        pod = get(apiserver, f"{PODS}/{name}")
        return pod is not None and pod["metadata"]["uid"] != uid

    wait_until(lambda: replaced("web-1", old_uid), "web-1 recreated", timeout=60)
    kubelet(apiserver, "web-1", "Running", ready=True)
    # A Failed pod is deleted and recreated under its name too.
    web2 = get(apiserver, f"{PODS}/web-2")
    assert web2 is not None
    kubelet(apiserver, "web-2", "Failed", ready=False)
    wait_until(lambda: replaced("web-2", web2["metadata"]["uid"]), "failed web-2 recreated", timeout=60)
    kubelet(apiserver, "web-2", "Running", ready=True)
    wait_until(ready, "3 ready replicas again", timeout=60)

    # Rolling update: highest ordinal first, each after the previous is ready again.
    first = status["updateRevision"]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}}
    code, body = apiserver.request("PATCH", f"{STS}/web", patch, content_type="application/merge-patch+json")
    assert code == 200, body

    def revision_of(name: str) -> str:
        pod = get(apiserver, f"{PODS}/{name}")
        return "" if pod is None else str(pod["metadata"]["labels"].get("controller-revision-hash", ""))

    for ordinal in (2, 1, 0):
        name = f"web-{ordinal}"
        wait_until(
            lambda n=name: revision_of(n) not in ("", first), f"{name} at the new revision", timeout=60
        )
        assert all(revision_of(f"web-{lower}") == first for lower in range(ordinal))  # one at a time
        kubelet(apiserver, name, "Running", ready=True)

    def rolled() -> bool:
        status = (get(apiserver, f"{STS}/web") or {}).get("status") or {}
        return status.get("currentRevision") == status.get("updateRevision") != first and (
            status.get("updatedReplicas") == 3
        )

    wait_until(rolled, "rolling update complete", timeout=60)
    code, listed = apiserver.request("GET", REVISIONS)
    assert sorted(r["revision"] for r in listed["items"]) == [1, 2]
    if not MODERN_KUBECTL.exists():
        return
    # the API defaults rollingUpdate.partition to 0, so kubectl reports the partitioned form (as upstream)
    done = kubectl(apiserver, "rollout", "status", "statefulset/web", "--timeout=20s")
    assert "partitioned roll out complete: 3 new pods have been updated..." in done
    history = kubectl(apiserver, "rollout", "history", "statefulset/web")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"], history
    assert "statefulset.apps/web rolled back" in kubectl(apiserver, "rollout", "undo", "statefulset/web")
    for ordinal in (2, 1, 0):  # undo is a rolling update back to the first template
        name = f"web-{ordinal}"
        wait_until(lambda n=name: revision_of(n) == first, f"{name} back at the first revision", timeout=60)
        kubelet(apiserver, name, "Running", ready=True)

    def renumbered() -> bool:
        return (get(apiserver, f"{REVISIONS}/{first}") or {}).get("revision") == 3

    wait_until(renumbered, "the first revision renumbered 3", timeout=30)


def test_statefulset_parallel_start_and_scale_down(apiserver: ApiServer, controllers: None) -> None:
    db = statefulset("db:1")
    db["metadata"]["name"] = "db"
    db["spec"]["podManagementPolicy"] = "Parallel"
    db["spec"]["selector"] = {"matchLabels": {"app": "db"}}
    db["spec"]["template"]["metadata"]["labels"] = {"app": "db"}
    code, body = apiserver.request("POST", STS, db)
    assert code == 201, body

    def db_names() -> list[str]:
        return sorted(p["metadata"]["name"] for p in pods(apiserver, "app=db"))

    wait_until(lambda: db_names() == ["db-0", "db-1", "db-2"], "db-0..2 created at once", timeout=60)
    for name in db_names():
        kubelet(apiserver, name, "Running", ready=True)
    scale = {"spec": {"replicas": 1}}
    if MODERN_KUBECTL.exists():  # through the scale subresource, as users do
        assert "statefulset.apps/db scaled" in kubectl(apiserver, "scale", "statefulset/db", "--replicas=1")
    else:
        code, body = apiserver.request(
            "PATCH", f"{STS}/db", scale, content_type="application/merge-patch+json"
        )
        assert code == 200, body
    wait_until(lambda: db_names() == ["db-0"], "db scaled down to db-0", timeout=60)

    def counted() -> bool:
        status = (get(apiserver, f"{STS}/db") or {}).get("status") or {}
        return status.get("replicas") == 1 and status.get("readyReplicas") == 1

    wait_until(counted, "status.replicas = 1", timeout=30)


def kubectl(apiserver: ApiServer, *args: str) -> str:
    """Modern kubectl against the test API server, in the test namespace."""
    config = write_kubeconfig(Path(apiserver.log.parent) / "kubeconfig-batch", apiserver, token=ADMIN_TOKEN)
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(config), "HOME": str(config.parent)}
    return proc.run([str(MODERN_KUBECTL), "-n", NS, *args], timeout=60, env=env).stdout


def job_pods(apiserver: ApiServer, job: str) -> list[dict[str, Any]]:
    return pods(apiserver, f"job-name%3D{job}")


def condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    return next(
        (c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == kind), None
    )


def test_job_completions_with_parallelism(apiserver: ApiServer, controllers: None) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "pi"},
        "spec": {
            "completions": 5,
            "parallelism": 2,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}},
        },
    }
    code, body = apiserver.request("POST", JOBS, job)
    assert code == 201, body
    most = 0
    deadline = time.monotonic() + 120
    while condition(get(apiserver, f"{JOBS}/pi"), "Complete") is None:
        assert time.monotonic() < deadline, f"job not complete: {get(apiserver, f'{JOBS}/pi')}"
        running = [
            p for p in job_pods(apiserver, "pi") if p["status"].get("phase") not in ("Succeeded", "Failed")
        ]
        most = max(most, len(running))
        assert len(running) <= 2, [p["metadata"]["name"] for p in running]
        if running:
            kubelet(apiserver, running[0]["metadata"]["name"], "Succeeded", ready=False)
        time.sleep(0.2)  # poll interval, not a wait for an outcome
    assert most == 2
    done = get(apiserver, f"{JOBS}/pi")
    assert done is not None
    assert done["status"]["succeeded"] == 5
    assert done["status"]["active"] == 0
    assert done["status"]["completionTime"]
    complete = condition(done, "Complete")
    assert complete is not None
    assert (complete["reason"], complete["message"]) == (
        "CompletionsReached",
        "Reached expected number of succeeded pods",
    )
    assert condition(done, "SuccessCriteriaMet") is not None
    assert len(job_pods(apiserver, "pi")) == 5
    if MODERN_KUBECTL.exists():
        waited = kubectl(apiserver, "wait", "--for=condition=complete", "job/pi", "--timeout=20s")
        assert "job.batch/pi condition met" in waited


def test_job_backoff_limit(apiserver: ApiServer, controllers: None) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fails"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            },
        },
    }
    assert apiserver.request("POST", JOBS, job)[0] == 201
    wait_until(lambda: len(job_pods(apiserver, "fails")) == 1, "the first pod", timeout=60)
    kubelet(apiserver, job_pods(apiserver, "fails")[0]["metadata"]["name"], "Failed", ready=False)
    wait_until(
        lambda: condition(get(apiserver, f"{JOBS}/fails"), "Failed") is not None, "job failed", timeout=60
    )
    failed = condition(get(apiserver, f"{JOBS}/fails"), "Failed")
    assert failed is not None
    assert (failed["reason"], failed["message"]) == (
        "BackoffLimitExceeded",
        "Job has reached the specified backoff limit",
    )
    assert len(job_pods(apiserver, "fails")) == 1  # no retry beyond the limit


def test_job_ttl_after_finished_deletes_it_and_its_pods(apiserver: ApiServer, controllers: None) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "brief"},
        "spec": {
            "ttlSecondsAfterFinished": 0,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
            },
        },
    }
    assert apiserver.request("POST", JOBS, job)[0] == 201
    wait_until(lambda: len(job_pods(apiserver, "brief")) == 1, "the Job's pod", timeout=60)
    kubelet(apiserver, job_pods(apiserver, "brief")[0]["metadata"]["name"], "Succeeded", ready=False)
    wait_until(lambda: get(apiserver, f"{JOBS}/brief") is None, "the finished Job deleted", timeout=60)
    wait_until(lambda: not job_pods(apiserver, "brief"), "its pod deleted with it", timeout=60)


def test_cronjob_fires_with_an_injected_clock(apiserver: ApiServer, controllers: None) -> None:
    cronjob = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "hello"},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
                    }
                }
            },
        },
    }
    code, created = apiserver.request("POST", CRONJOBS, cronjob)
    assert code == 201
    made = datetime.strptime(created["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ")
    first_minute = made.replace(tzinfo=UTC, second=0) + timedelta(minutes=1)
    CLOCK.now = first_minute + timedelta(seconds=1)  # one scheduled time has come, the next never does
    touched = apiserver.request(  # an update makes the controller sync again on the new clock
        "PATCH",
        f"{CRONJOBS}/hello",
        {"metadata": {"labels": {"clock": "set"}}},
        content_type="application/merge-patch+json",
    )
    assert touched[0] == 200, touched

    def fired() -> list[dict[str, Any]]:
        _code, listed = apiserver.request("GET", JOBS)
        return [j for j in listed["items"] if j["metadata"]["name"].startswith("hello-")]

    wait_until(lambda: len(fired()) == 1, "the CronJob's Job", timeout=60)
    job = fired()[0]
    minutes = int(job["metadata"]["name"].removeprefix("hello-"))
    scheduled = datetime.fromtimestamp(minutes * 60, UTC)
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"
    ] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")

    def recorded() -> bool:
        status = (get(apiserver, f"{CRONJOBS}/hello") or {}).get("status") or {}
        return [a["name"] for a in status.get("active") or []] == [job["metadata"]["name"]] and status.get(
            "lastScheduleTime"
        ) == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")

    wait_until(recorded, "CronJob status: active and lastScheduleTime", timeout=30)
    wait_until(lambda: len(job_pods(apiserver, job["metadata"]["name"])) == 1, "the Job's pod", timeout=60)
