"""Probes, init containers and activeDeadlineSeconds inside vSphere Pods on the teaching lab.

Issue 13, "What it must show": a liveness probe failure restarts the container (restartCount + 1,
the Unhealthy and Killing Events); readiness false keeps the pod out of its Service's endpoints
(and true puts it in); init containers run first, and a failing one blocks the pod with
upstream's status (``Init:Error`` and phase Failed under restartPolicy Never,
``Init:CrashLoopBackOff`` otherwise); a pod past activeDeadlineSeconds fails with
DeadlineExceeded. The probes run inside the pod VM (pod-init); the test reads only the API.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import apply, condition, get_json, kubectl, pod_json, wait_for, wait_phase
from tests.e2e.services import CLIENT, ready_addresses, wait_endpoints
from tests.e2e.workloads import LIMITS, WEB

Obj = dict[str, Any]


def pod(name: str, namespace: str, containers: list[Obj], **spec: Any) -> Obj:
    for c in containers:
        c.setdefault("image", CLIENT)
        c.setdefault("resources", LIMITS)
    for c in spec.get("initContainers") or []:
        c.setdefault("image", CLIENT)
        c.setdefault("resources", LIMITS)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": spec.pop("labels", {"test": name})},
        "spec": {"containers": containers, **spec},
    }


def events_of(lab: LiveLab, namespace: str, name: str) -> list[tuple[str, str]]:
    """(reason, message) of the Events about pod ``name``."""
    found = get_json(lab, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")
    return [(str(e.get("reason")), str(e.get("message"))) for e in found["items"]]


def status_column(lab: LiveLab, namespace: str, name: str) -> str:
    """kubectl's STATUS column for the pod (NAME READY STATUS RESTARTS AGE)."""
    return kubectl(lab, "get", "pod", name, "-n", namespace, "--no-headers").stdout.split()[2]


def container_status(obj: Obj, name: str, key: str = "containerStatuses") -> Obj:
    return next(s for s in (obj.get("status") or {}).get(key) or [] if s["name"] == name)


def test_a_liveness_failure_restarts_the_container_with_events(agents: LiveLab, namespace: str) -> None:
    # the client image links no touch or rm applets: its busybox runs rm
    script = "echo ok > /tmp/healthy; echo started; sleep 10; busybox rm /tmp/healthy; sleep 600"
    app = {
        "name": "app",
        "command": ["sh", "-c", script],
        "livenessProbe": {
            "exec": {"command": ["cat", "/tmp/healthy"]},
            "periodSeconds": 3,
            "failureThreshold": 2,
        },
    }
    # sh ignores SIGTERM: the liveness kill waits the pod's grace period out (upstream too), so keep it short
    apply(agents, pod("live", namespace, [app], terminationGracePeriodSeconds=2))
    wait_phase(agents, namespace, "live", ("Running",))
    restarted: Obj = {}

    def restarts() -> bool:
        restarted.update(container_status(pod_json(agents, namespace, "live"), "app"))
        return int(restarted.get("restartCount", 0)) >= 1

    wait_for(restarts, "the container restarted after its liveness probe failed")
    assert "terminated" in restarted["lastState"]
    messages = events_of(agents, namespace, "live")
    assert any(r == "Unhealthy" and m.startswith("Liveness probe failed:") for r, m in messages), messages
    assert ("Killing", "Container app failed liveness probe, will be restarted") in messages


def test_readiness_decides_whether_the_pod_is_in_its_services_endpoints(
    agents: LiveLab, namespace: str
) -> None:
    def web(name: str, ready_path: str, command: list[str]) -> Obj:
        container = {
            "name": "web",
            "image": WEB,
            "command": command,
            "ports": [{"name": "http", "containerPort": 80}],
            "readinessProbe": {"httpGet": {"path": ready_path, "port": "http"}, "periodSeconds": 2},
        }
        return pod(name, namespace, [container], labels={"app": "probed"})

    serve = ["httpd", "-f", "-p", "80", "-h", "/www"]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "probed", "namespace": namespace},
        "spec": {"selector": {"app": "probed"}, "ports": [{"port": 80, "targetPort": "http"}]},
    }
    apply(agents, service)
    apply(agents, web("always", "/", serve))
    apply(agents, web("later", "/late", serve))  # /late exists once the test writes it
    ready_ip = wait_phase(agents, namespace, "always", ("Running",))
    wait_phase(agents, namespace, "later", ("Running",))

    always_ip = ready_ip["status"]["podIP"]
    wait_for(lambda: always_ip in ready_addresses(agents, namespace, "probed"), "pod always in the endpoints")
    # The first probes may find httpd not listening yet (connection refused); the 404 follows.
    expected = ("Unhealthy", "Readiness probe failed: HTTP probe failed with statuscode: 404")
    wait_for(lambda: expected in events_of(agents, namespace, "later"), "a 404 readiness Event")
    later = pod_json(agents, namespace, "later")
    assert condition(later, "Ready") == "False"
    assert container_status(later, "web")["ready"] is False
    assert status_column(agents, namespace, "later") == "Running"
    assert later["status"]["podIP"] not in ready_addresses(agents, namespace, "probed")

    kubectl(agents, "exec", "later", "-n", namespace, "--", "sh", "-c", "echo ok > /www/late")
    both = wait_endpoints(agents, namespace, "probed", 2)  # /late answers 200: readiness turns true
    assert always_ip in both
    assert later["status"]["podIP"] in both
    assert condition(pod_json(agents, namespace, "later"), "Ready") == "True"


def test_init_containers_run_first_in_order(agents: LiveLab, namespace: str) -> None:
    inits = [
        {"name": "first", "command": ["sh", "-c", "echo first"]},
        {"name": "second", "command": ["sh", "-c", "echo second"]},
    ]
    apply(
        agents, pod("inits", namespace, [{"name": "app", "command": ["sleep", "600"]}], initContainers=inits)
    )
    obj = wait_phase(agents, namespace, "inits", ("Running",))
    first, second = (container_status(obj, n, "initContainerStatuses") for n in ("first", "second"))
    for done in (first, second):
        assert done["state"]["terminated"]["exitCode"] == 0
        assert done["state"]["terminated"]["reason"] == "Completed"
    app_started = container_status(obj, "app")["state"]["running"]["startedAt"]
    assert first["state"]["terminated"]["finishedAt"] <= second["state"]["terminated"]["startedAt"]
    assert second["state"]["terminated"]["finishedAt"] <= app_started
    assert condition(obj, "Initialized") == "True"


def test_a_failing_init_container_blocks_the_pod(agents: LiveLab, namespace: str) -> None:
    failing = [{"name": "check", "command": ["sh", "-c", "echo no database; exit 3"]}]
    app = [{"name": "app", "command": ["sleep", "600"]}]
    apply(
        agents, pod("never", namespace, [dict(a) for a in app], initContainers=failing, restartPolicy="Never")
    )
    apply(agents, pod("again", namespace, [dict(a) for a in app], initContainers=[dict(f) for f in failing]))

    failed = wait_phase(agents, namespace, "never", ("Failed",))
    check = container_status(failed, "check", "initContainerStatuses")["state"]["terminated"]
    assert (check["exitCode"], check["reason"]) == (3, "Error")
    assert container_status(failed, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    assert condition(failed, "Initialized") == "False"
    assert status_column(agents, namespace, "never") == "Init:Error"

    def crash_looping() -> bool:
        return status_column(agents, namespace, "again") == "Init:CrashLoopBackOff"

    wait_for(crash_looping, "pod again shows Init:CrashLoopBackOff")
    again = pod_json(agents, namespace, "again")
    assert again["status"]["phase"] == "Pending"
    assert container_status(again, "check", "initContainerStatuses")["restartCount"] >= 1
    assert "running" not in container_status(again, "app")["state"]


def test_a_pod_past_its_active_deadline_fails(agents: LiveLab, namespace: str) -> None:
    apply(
        agents,
        pod("deadline", namespace, [{"name": "app", "command": ["sleep", "600"]}], activeDeadlineSeconds=15),
    )
    obj = wait_phase(agents, namespace, "deadline", ("Failed",))
    assert obj["status"]["reason"] == "DeadlineExceeded"
    assert obj["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert ("DeadlineExceeded", obj["status"]["message"]) in events_of(agents, namespace, "deadline")
