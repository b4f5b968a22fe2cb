"""Pod spec -> pod-init probes, hooks, init flags and deadline; pod-init reports -> Events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from nestlab.agent import podprobes
from nestlab.runtime import control
from nestlab.runtime.poddesc import Action, Container, ContainerName, DiskSerial, PodDescription, Probe

WEB = {"name": "web", "image": "nginx", "ports": [{"name": "http", "containerPort": 8080}]}


def desc(*names: str) -> PodDescription:
    return PodDescription(
        "p", tuple(Container(ContainerName(n), DiskSerial("img-0"), ("sh",)) for n in names)
    )


def test_a_probe_gets_the_api_defaults_and_its_named_port() -> None:
    spec = {"httpGet": {"path": "healthz", "port": "http", "httpHeaders": [{"name": "X-A", "value": "b c"}]}}
    probe = podprobes.probe_of("readiness", spec, WEB, "spec.containers[0].readinessProbe")
    assert probe == Probe(
        "readiness",
        Action("http", port=8080, path="/healthz", headers=(("X-A", "b c"),)),
        initial_delay_s=0,
        period_s=10,
        timeout_s=1,
        success_threshold=1,
        failure_threshold=3,
    )


def test_timing_fields_exec_and_tcp_handlers() -> None:
    exec_spec = {"exec": {"command": ["cat", "/tmp/ok"]}, "periodSeconds": 2, "failureThreshold": 1}
    assert podprobes.probe_of("liveness", exec_spec, WEB, "x") == Probe(
        "liveness", Action("exec", ("cat", "/tmp/ok")), period_s=2, failure_threshold=1
    )
    tcp = {"tcpSocket": {"port": 5432, "host": "10.0.0.9"}, "initialDelaySeconds": 5}
    assert podprobes.probe_of("startup", tcp, WEB, "x") == Probe(
        "startup", Action("tcp", host="10.0.0.9", port=5432), initial_delay_s=5
    )


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        ({"httpGet": {"port": "nope"}}, "x.httpGet.port: the container has no port named 'nope'"),
        ({"httpGet": {"port": 80, "scheme": "HTTPS"}}, "x.httpGet.scheme: pod-init probes over HTTP only"),
        ({"tcpSocket": {"port": 80, "host": "db.example"}}, "x.tcpSocket.host: 'db.example'"),
        ({"tcpSocket": {"port": 70000}}, "x.tcpSocket.port: 70000 must be between 1 and 65535"),
        ({"grpc": {"port": 80}}, "x.grpc: not implemented"),
        ({"exec": {"command": []}}, "x.exec.command must not be empty"),
        ({}, "x: must specify exactly one of exec, httpGet or tcpSocket"),
    ],
)
def test_handlers_pod_init_cannot_run_are_refused_by_field(handler: dict[str, object], words: str) -> None:
    with pytest.raises(podprobes.LifecycleError, match="^" + words.replace("(", r"\(").replace(".", r"\.")):
        podprobes.action_of(handler, WEB, "x")


def test_attach_flags_init_containers_and_gives_app_containers_probes_and_hooks() -> None:
    pod = {
        "spec": {
            "initContainers": [{"name": "prep", "image": "busybox"}],
            "containers": [
                {
                    **WEB,
                    "livenessProbe": {"tcpSocket": {"port": "http"}},
                    "lifecycle": {
                        "postStart": {"exec": {"command": ["touch", "/tmp/a"]}},
                        "preStop": {"httpGet": {"port": 8080, "path": "/quit"}},
                    },
                },
                {"name": "side", "image": "busybox"},
            ],
            "activeDeadlineSeconds": 30,
        }
    }
    out = podprobes.attach(desc("prep", "web", "side"), pod)
    _, web, side = out.containers
    assert [c.init for c in out.containers] == [True, False, False]
    assert web.probes == (Probe("liveness", Action("tcp", port=8080)),)
    assert web.post_start == Action("exec", ("touch", "/tmp/a"))
    assert web.pre_stop == Action("http", port=8080, path="/quit")
    assert (side.probes, side.post_start) == ((), None)
    assert out.deadline_s == 30


def test_init_containers_may_not_have_probes() -> None:
    pod = {"spec": {"initContainers": [{"name": "prep", "readinessProbe": {"exec": {"command": ["true"]}}}]}}
    with pytest.raises(podprobes.LifecycleError, match="initContainers prep: probes and lifecycle hooks"):
        podprobes.attach(desc("prep"), pod)


def test_the_deadline_counts_from_the_pods_start_time() -> None:
    now = datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)
    pod = {"spec": {"activeDeadlineSeconds": 100}, "status": {"startTime": "2026-01-01T00:00:00Z"}}
    assert podprobes.deadline_left(pod, now) == 40
    assert podprobes.deadline_left({"spec": {}}, now) is None
    assert podprobes.deadline_left({"spec": {"activeDeadlineSeconds": 5}}, now) == 5  # not started yet
    late = {"spec": {"activeDeadlineSeconds": 10}, "status": {"startTime": "2026-01-01T00:00:00Z"}}
    assert podprobes.attach(desc("web"), late, now).deadline_s == 1  # exceeded: pod-init ends it at once
    assert podprobes.attach(desc("web"), {"spec": {}}, now).deadline_s == 0


def test_events_as_the_kubelet_records_them() -> None:
    failed = control.ProbeResult("web", "liveness", False, False, "HTTP probe failed with statuscode: 500")
    assert podprobes.events(failed) == [
        ("Warning", "Unhealthy", "Liveness probe failed: HTTP probe failed with statuscode: 500")
    ]
    assert podprobes.events(control.ProbeResult("web", "readiness", True, True)) == []
    assert podprobes.events(control.Killing("web", "liveness", True)) == [
        ("Normal", "Killing", "Container web failed liveness probe, will be restarted")
    ]
    assert podprobes.events(control.Killing("web", "startup", False)) == [
        ("Normal", "Killing", "Container web failed startup probe")
    ]
    hook = podprobes.events(control.HookFailed("web", "postStart", "boom"))
    assert hook == [("Warning", "FailedPostStartHook", "postStart hook for container web failed: boom")]
    deadline = [
        ("Warning", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
    ]
    assert podprobes.events(control.DeadlineExceeded("p")) == deadline
    # once: the pod event after pod-init's deadline event records nothing more
    assert podprobes.events(control.PodDone("p", "Failed", "DeadlineExceeded"), was_terminal=True) == []
    # a pod-init that sends no deadline event (an adopted VM of an older one): recorded at the end
    assert podprobes.events(control.PodDone("p", "Failed", "DeadlineExceeded")) == deadline
    assert podprobes.events(control.PodDone("p", "Failed")) == []


def test_a_tcp_socket_hook_is_refused_as_upstream_fails_it() -> None:
    pod = {"spec": {"containers": [{**WEB, "lifecycle": {"preStop": {"tcpSocket": {"port": 80}}}}]}}
    with pytest.raises(
        podprobes.LifecycleError, match=r"spec\.containers\[0\]\.lifecycle\.preStop\.tcpSocket"
    ):
        podprobes.attach(desc("web"), pod)
