"""ConfigMaps, Secrets and volumes inside vSphere Pods on the teaching lab (issue 13, "What it must show").

- a ConfigMap as env (valueFrom and envFrom) and as files; the ConfigMap is updated and the
  running pod's file shows the new value (the time it took is printed), its env keeps the old one
  (as upstream: env is read once, at container start);
- a Secret mounted with ``defaultMode: 0400`` is ``-r--------`` inside the pod and holds the value;
- an emptyDir shared by two containers of one pod;
- a volume naming a missing ConfigMap keeps the pod ContainerCreating with the FailedMount Event,
  and an env naming one makes the container wait with CreateContainerConfigError; both start
  once the ConfigMap exists.
"""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import apply, get_json, kubectl, pod_json, wait_for, wait_phase
from tests.e2e.services import CLIENT
from tests.e2e.workloads import LIMITS

Obj = dict[str, Any]
# the client image has no ls or [ applet links: its /bin/busybox runs them
WATCH_FILE = 'last=; while true; do cur=$(cat {path}); busybox test "$cur" = "$last" || echo "FILE $cur"; last=$cur; sleep 1; done'


def pod(name: str, namespace: str, containers: list[Obj], volumes: list[Obj]) -> Obj:
    for c in containers:
        c.setdefault("image", CLIENT)
        c.setdefault("resources", LIMITS)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": containers, "volumes": volumes},
    }


def logs(lab: LiveLab, namespace: str, name: str, container: str) -> str:
    return kubectl(lab, "logs", name, "-c", container, "-n", namespace, check=False).stdout


def wait_log(lab: LiveLab, namespace: str, name: str, container: str, line: str) -> None:
    wait_for(
        lambda: line in logs(lab, namespace, name, container).splitlines(),
        f"{name}/{container} says {line!r}",
    )


def configmap(name: str, namespace: str, data: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def events_of(lab: LiveLab, namespace: str, name: str) -> list[Obj]:
    items = get_json(lab, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")[
        "items"
    ]
    return list(items)


def test_configmap_as_env_and_files_updated_in_the_running_pod(agents: LiveLab, namespace: str) -> None:
    kubectl(agents, "create", "configmap", "app", "-n", namespace, "--from-literal=color=blue")
    script = 'echo "ENV $COLOR $CFG_color"; ' + WATCH_FILE.format(path="/etc/app/color")
    container = {
        "name": "app",
        "command": ["sh", "-c", script],
        "env": [{"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "color"}}}],
        "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "CFG_"}],
        "volumeMounts": [{"name": "config", "mountPath": "/etc/app"}],
    }
    apply(agents, pod("cm", namespace, [container], [{"name": "config", "configMap": {"name": "app"}}]))
    wait_phase(agents, namespace, "cm", ("Running",))
    wait_log(agents, namespace, "cm", "app", "ENV blue blue")
    wait_log(agents, namespace, "cm", "app", "FILE blue")

    changed = time.monotonic()
    apply(agents, configmap("app", namespace, {"color": "green"}))
    wait_log(agents, namespace, "cm", "app", "FILE green")
    print(f"configMap update -> visible in the pod: {time.monotonic() - changed:.1f} s")
    assert "ENV green green" not in logs(agents, namespace, "cm", "app")  # env is read at start only


def test_secret_mounted_with_mode_0400(agents: LiveLab, namespace: str) -> None:
    kubectl(agents, "create", "secret", "generic", "db", "-n", namespace, "--from-literal=password=s3cret")
    script = 'busybox ls -lL /etc/db/password; echo "VALUE $(cat /etc/db/password)"; sleep 3600'
    container = {
        "name": "app",
        "command": ["sh", "-c", script],
        "volumeMounts": [{"name": "db", "mountPath": "/etc/db", "readOnly": True}],
    }
    volume = {"name": "db", "secret": {"secretName": "db", "defaultMode": 0o400}}
    apply(agents, pod("secret", namespace, [container], [volume]))
    wait_phase(agents, namespace, "secret", ("Running",))
    wait_log(agents, namespace, "secret", "app", "VALUE s3cret")
    listing = logs(agents, namespace, "secret", "app").splitlines()[0]
    assert listing.startswith("-r-------- "), listing


def test_empty_dir_shared_by_two_containers(agents: LiveLab, namespace: str) -> None:
    shared = [{"name": "shared", "mountPath": "/shared"}]
    writer = {
        "name": "writer",
        "command": ["sh", "-c", "echo hello > /shared/msg; sleep 3600"],
        "volumeMounts": shared,
    }
    reader_script = (
        'while ! busybox test -f /shared/msg; do sleep 1; done; echo "READ $(cat /shared/msg)"; sleep 3600'
    )
    reader = {"name": "reader", "command": ["sh", "-c", reader_script], "volumeMounts": shared}
    apply(agents, pod("shared", namespace, [writer, reader], [{"name": "shared", "emptyDir": {}}]))
    wait_phase(agents, namespace, "shared", ("Running",))
    wait_log(agents, namespace, "shared", "reader", "READ hello")


def test_missing_configmaps_keep_the_pod_waiting_until_they_exist(agents: LiveLab, namespace: str) -> None:
    mounted = {
        "name": "app",
        "command": [
            "sh",
            "-c",
            'echo "$(cat /etc/late/k)"; sleep 3600',
        ],  # cat alone: no newline, no log line
        "volumeMounts": [{"name": "late", "mountPath": "/etc/late"}],
    }
    apply(agents, pod("vol", namespace, [mounted], [{"name": "late", "configMap": {"name": "late"}}]))
    from_env = {
        "name": "app",
        "command": ["sh", "-c", 'echo "ENV $K"; sleep 3600'],
        "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "later", "key": "k"}}}],
    }
    apply(agents, pod("env", namespace, [from_env], []))

    expected = 'MountVolume.SetUp failed for volume "late" : configmap "late" not found'
    wait_for(
        lambda: any(
            e.get("reason") == "FailedMount" and e.get("message") == expected
            for e in events_of(agents, namespace, "vol")
        ),
        "FailedMount Event for the missing ConfigMap",
    )
    assert pod_json(agents, namespace, "vol")["status"]["phase"] == "Pending"

    def config_error() -> bool:
        statuses = (pod_json(agents, namespace, "env").get("status") or {}).get("containerStatuses") or [{}]
        waiting = (statuses[0].get("state") or {}).get("waiting") or {}
        return (
            waiting.get("reason") == "CreateContainerConfigError"
            and waiting.get("message") == 'configmap "later" not found'
        )

    wait_for(config_error, "container waiting with CreateContainerConfigError")
    assert pod_json(agents, namespace, "env")["status"]["phase"] == "Pending"

    apply(agents, configmap("late", namespace, {"k": "here"}))
    apply(agents, configmap("later", namespace, {"k": "now"}))
    wait_phase(agents, namespace, "vol", ("Running",))
    wait_phase(agents, namespace, "env", ("Running",))
    wait_log(agents, namespace, "vol", "app", "here")
    wait_log(agents, namespace, "env", "app", "ENV now")
