"""Workload manifests and watchers, shared by test_workloads.py and the workload benches.

bench/host_failure.py, bench/rolling_update.py and bench/deployment_reaction.py deploy the same
web Deployment the e2e tests deploy and watch it the same way, so a figure in docs/workloads.md
and a test's assertion speak about the same thing:

- :class:`PodWatcher` samples a count over pods every 0.5 s (the tests' "never fewer than N");
- :class:`GhostWatch` hunts pods reported Running on a host that has no QEMU for them;
- :class:`ApiWatch` lists and watches a collection and reports every change with the time it was
  seen (the benches' phase timestamps).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from types import TracebackType
from typing import Any

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import REGISTRY, LabApi, condition, get_json, on_node

Obj = dict[str, Any]
SAMPLE_S = 0.5  # how often the watchers sample (the issue asks for every 0.5 s)
WEB = f"{REGISTRY}/nestlab/web:1"
NEW_WEB = f"{REGISTRY}/nestlab/web:2"  # the same server in another image (another digest)
JOB = f"{REGISTRY}/nestlab/job:ok"
SERVE = ["httpd", "-f", "-p", "80", "-h", "/www"]
LIMITS = {"limits": {"memory": "64Mi"}}  # a 96 MiB guest: nine pods fit the hosts' memory easily


GRACE_S = 2
"""The test pods' terminationGracePeriodSeconds: httpd, PID 1 of its container, ignores SIGTERM, so
each delete, rollout and eviction would wait the default 30 s out (exercise 5 shows that wait; the
tests check what follows it)."""


def template(app: str, image: str = WEB, **spec: Any) -> Obj:
    """A pod template serving the demo page, labelled ``app``."""
    container = {"name": "web", "image": image, "command": SERVE, "resources": LIMITS}
    spec = {"terminationGracePeriodSeconds": GRACE_S, **spec}
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [container], **spec}}


def deployment(name: str, namespace: str, replicas: int = 3, **spec: Any) -> Obj:
    """An apps/v1 Deployment of the demo web image, selecting ``app: name``."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": template(name),
            **spec,
        },
    }


SURGE = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
"""The rolling update the issue measures: one extra pod at a time, never one fewer."""


def statefulset(name: str, namespace: str, replicas: int = 3) -> Obj:
    """A StatefulSet of the demo web image; its pods are ``name-0`` ... ``name-N``."""
    # No Service exists in this lab yet: serviceName must be given, the Service need not exist.
    # Parallel, so the pods boot together (OrderedReady would boot them one after another).
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": template(name),
        },
    }


def pod_ready(pod: Obj) -> bool:
    """Ready=True and not being deleted: a replica that serves and stays."""
    return condition(pod, "Ready") == "True" and not pod["metadata"].get("deletionTimestamp")


def owned_by(obj: Obj, kind: str, name: str | None = None) -> bool:
    """Whether an ownerReference of ``obj`` names a ``kind`` (called ``name`` when given)."""
    return any(
        ref.get("kind") == kind and (name is None or ref.get("name") == name)
        for ref in obj["metadata"].get("ownerReferences") or []
    )


def running_without_vm(pods: list[Obj], host: str, qemu_lines: list[str]) -> dict[str, str]:
    """uid -> name of the pods bound to ``host`` that report Running while no QEMU there is theirs.

    The agent names each pod VM after the pod's uid, so its QEMU command line carries the uid.
    """
    return {
        str(p["metadata"]["uid"]): str(p["metadata"]["name"])
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == host
        and (p.get("status") or {}).get("phase") == "Running"
        and not any(p["metadata"]["uid"] in line for line in qemu_lines)
    }


class PodWatcher(threading.Thread):
    """Samples, every 0.5 s, a count over the pods matching a selector (by default: the Ready ones).

    Use as a context manager around the disruption; :attr:`lowest` and :attr:`highest` are what the
    tests assert on. Samples the API could not answer are counted apart (no evidence either way).
    """

    def __init__(
        self, api: LabApi, namespace: str, selector: str = "", count: Callable[[Obj], bool] = pod_ready
    ) -> None:
        super().__init__(daemon=True)
        self.api, self.path = api, f"/api/v1/namespaces/{namespace}/pods"
        self.query = {"labelSelector": selector} if selector else {}
        self.count = count
        self.samples: list[tuple[float, int]] = []
        self.failed = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            started = time.monotonic()
            try:
                pods = self.api.items(self.path, **self.query)
                self.samples.append((started, sum(1 for p in pods if self.count(p))))
            except (OSError, http.client.HTTPException):
                self.failed += 1
            self._done.wait(max(0.0, SAMPLE_S - (time.monotonic() - started)))

    def _counts(self) -> list[int]:
        if not self.samples:
            raise AssertionError(f"the watcher got no sample ({self.failed} failed requests)")
        return [count for _, count in self.samples]

    @property
    def lowest(self) -> int:
        return min(self._counts())

    @property
    def highest(self) -> int:
        return max(self._counts())

    def timeline(self) -> str:
        """The samples, for an assertion message: seconds since the first, and the count."""
        first = self.samples[0][0] if self.samples else 0.0
        return " ".join(f"{t - first:.1f}s:{n}" for t, n in self.samples)

    def __enter__(self) -> PodWatcher:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._done.set()
        self.join(timeout=30)


class GhostWatch:
    """Catches a pod reported Running on ``host`` while no QEMU there is its VM.

    Each :meth:`check` reads the pods, the host's QEMU processes, and the pods again; a pod counts
    only when its resourceVersion did not move in between (a pod being deleted or started is in
    flux, not a ghost) and when the previous check saw the same (the agent needs a moment to notice
    a VM that just ended; the ghosts this hunts, as in the issue, persist for minutes).
    """

    def __init__(self, lab: LiveLab, host: str) -> None:
        self.lab, self.host = lab, host
        self.previous: dict[str, str] = {}
        self.checks = 0

    def _pods(self) -> list[Obj]:
        return list(get_json(self.lab, "pods", "-A")["items"])

    def check(self) -> None:
        before = {p["metadata"]["uid"]: p["metadata"].get("resourceVersion") for p in self._pods()}
        probe = on_node(self.lab, self.host, "pgrep -af '[q]emu-system' || true", check=False)
        if probe.returncode != 0:  # the host is not reachable (yet): no evidence
            return
        lines = [line for line in probe.stdout.splitlines() if line.strip()]
        after = self._pods()
        steady = [
            p for p in after if before.get(p["metadata"]["uid"]) == p["metadata"].get("resourceVersion")
        ]
        now = running_without_vm(steady, self.host, lines)
        persisting = {uid: name for uid, name in now.items() if uid in self.previous}
        assert not persisting, f"reported Running on {self.host} with no QEMU there: {persisting}"
        self.previous = now
        self.checks += 1


class ApiWatch(threading.Thread):
    """List, then watch, one collection; after every change calls ``seen(when, objects)``.

    ``when`` is the monotonic time the change was read, ``objects`` the collection as it is now
    (uid -> object; do not keep or change it). A broken or quiet connection (``QUIET_S`` without
    an event) is answered by listing again and watching from there, so a moved VIP or a restarted
    API server costs a few seconds of blindness, never a hang. The benches time phases with it.
    """

    QUIET_S = 5.0

    def __init__(self, api: LabApi, path: str, seen: Callable[[float, dict[str, Obj]], None]) -> None:
        """``path``: a collection, with its query if any (``...pods?labelSelector=app%3Dweb``)."""
        super().__init__(daemon=True)
        self.api, self.path, self.seen = api, path, seen
        self.objects: dict[str, Obj] = {}
        self.restarts = 0
        self.listed = threading.Event()
        """Set once the first list arrived: changes from then on are seen as they happen."""
        self._done = threading.Event()

    def _list(self) -> str:
        code, body = self.api.request("GET", self.path)
        if code != 200:
            raise OSError(f"GET {self.path} answered {code}")
        self.objects = {item["metadata"]["uid"]: item for item in body.get("items") or []}
        self.seen(time.monotonic(), self.objects)
        self.listed.set()
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, version: str) -> None:
        conn = http.client.HTTPSConnection(
            self.api.host, self.api.port, context=self.api.context, timeout=self.QUIET_S
        )
        try:
            query = urllib.parse.urlencode(
                {"watch": "1", "resourceVersion": version, "timeoutSeconds": "300"}
            )
            joiner = "&" if "?" in self.path else "?"
            conn.request("GET", f"{self.path}{joiner}{query}", headers={"Accept": "application/json"})
            response = conn.getresponse()
            if response.status != 200:
                raise OSError(f"watch {self.path} answered {response.status}")
            while not self._done.is_set():
                line = response.readline()
                if not line:
                    return  # the server ended the watch (timeoutSeconds): list again
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":  # 410 Gone and friends: list again
                    return
                uid = (obj.get("metadata") or {}).get("uid")
                if uid is None:
                    continue
                if event.get("type") == "DELETED":
                    self.objects.pop(uid, None)
                else:
                    self.objects[uid] = obj
                self.seen(time.monotonic(), self.objects)
        finally:
            conn.close()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self._watch(self._list())
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                self.restarts += 1
                self._done.wait(0.2)  # the API is failing over; try again soon

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=self.QUIET_S + 5)
