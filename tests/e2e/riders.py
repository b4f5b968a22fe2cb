"""Checks that ride on an exercise's own disruption instead of making one more.

The exercises (docs/exercises, run as tests by test_exercises.py) stop a host, put a host into
maintenance mode, fail a host's attestation and stop the etcd leader's node. Older e2e tests made
each of these disruptions again, for checks the exercise's Markdown does not make: a StatefulSet's
pods back under their names, a Service answering by name while a host is down, the eviction API's
429, a pod pinned to an untrusted host left unscheduled, every request answered while an etcd
member is down. A disruption costs minutes on the lab (detection, tolerations, node boots), so
those checks now ride on the exercise's: a :class:`Rider` prepares objects in a namespace of its
own and makes its checks just before or after the exercise commands it names (the frame:
tests/e2e/rider.py).

Where each check came from is in each rider's docstring.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.e2e.conftest import KUBECTL, LiveLab, nestlab
from tests.e2e.labtools import (
    RESTORE_TIMEOUT_S,
    LabApi,
    apply,
    condition,
    get_json,
    kubectl,
    nodes,
    placed_on,
    pod_json,
    qemu_lines,
    wait_for,
    wait_lab_healthy,
    wait_phase,
)
from tests.e2e.rider import Cue, Obj, Rider, node_row, own_namespace, pinned, ready_on
from tests.e2e.services import client_pod, fetch_loop, run_probes, tagged, wait_endpoints
from tests.e2e.workloads import JOB, WEB, GhostWatch, PodWatcher, deployment, pod_ready, statefulset

REFUSED = ("Unable to connect to the server", "ServiceUnavailable", "InternalError")
"""What kubectl says without an etcd quorum: the LBs have no ready API server, or one answers 503."""
DETECT_S = 180.0  # the lab's 30 s grace (lease not renewed) plus the controller's next pass, loaded
SCHEDULER_S = 120.0  # the scheduler's first pass over a new pod on a loaded controller


class HostFailure(Rider):
    """Exercise 9 stops esx-02: what test_workloads' host-failure test checked on its own stop.

    While the host is down: the Deployment is back to 3 ready replicas on the other hosts (also
    through Debian's kubectl), a pod pinned there with unlimited tolerations stays bound, and the
    Deployment's Service answers 30 of 30 requests by name from a surviving host (cluster DNS
    without the cp node the host took down). Once it is back: the StatefulSet's pods return under
    their names, the pinned pod restarted in place (restartCount + 1), the finished one stays
    Succeeded, the host's proxy and DNS serve again, and no pod is reported Running there without
    its QEMU (:class:`GhostWatch`).
    """

    HOST = "esx-02"

    def __post_init__(self) -> None:
        self.namespace = own_namespace(9)
        stop, start = f"nestlab node stop {self.HOST}", f"nestlab node start {self.HOST}"
        self.cues = [
            Cue(stop, 1, "before", self.placed),
            Cue(stop, 1, "after", self.down),
            Cue(start, 1, "after", self.back),
        ]
        self.old_uids: dict[str, str] = {}
        self.gone_web: set[str] = set()
        self.restarts = 0

    def prepare(self) -> None:
        super().prepare()
        ns = self.namespace
        apply(self.lab, deployment("hello", ns))
        apply(self.lab, statefulset("web", ns))
        apply(self.lab, pinned("always", ns, self.HOST, WEB, "Always"))
        apply(self.lab, pinned("finished", ns, self.HOST, JOB, "Never"))
        kubectl(self.lab, "expose", "deployment", "hello", "-n", ns, "--port=80")  # the Service across it

    def placed(self) -> None:
        lab, ns, host = self.lab, self.namespace, self.HOST
        assert placed_on(lab, "depot") != host, "stopping the depot's host would take the registry away"
        kubectl(lab, "rollout", "status", "deployment/hello", "-n", ns, "--timeout=600s")
        wait_for(lambda: len(ready_on(lab, ns, "app=web")) == 3, "web-0..2 ready")
        hello, web = ready_on(lab, ns, "app=hello"), ready_on(lab, ns, "app=web")
        assert len(set(hello.values())) == 3, f"not one replica per host: {hello}"
        self.gone_web = {name for name, on in web.items() if on == host}
        assert self.gone_web, f"no StatefulSet pod on {host}: {web}"
        self.old_uids = {
            p["metadata"]["uid"]: p["metadata"]["name"]
            for p in get_json(lab, "pods", "-n", ns)["items"]
            if p["spec"].get("nodeName") == host
        }
        always = wait_phase(lab, ns, "always", ("Running", "Failed"))
        assert always["status"]["phase"] == "Running", json.dumps(always["status"])
        assert wait_phase(lab, ns, "finished", ("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
        self.restarts = always["status"]["containerStatuses"][0].get("restartCount", 0)

    def down(self) -> None:
        lab, ns, host = self.lab, self.namespace, self.HOST

        def detected() -> bool:
            node = get_json(lab, "node", host)
            taints = {(t.get("key"), t.get("effect")) for t in node["spec"].get("taints") or []}
            return (
                condition(node, "Ready") != "True"
                and ("node.kubernetes.io/unreachable", "NoExecute") in taints
            )

        wait_for(detected, f"{host} NotReady with the unreachable:NoExecute taint", DETECT_S, transient=True)
        wait_for(
            lambda: condition(pod_json(lab, ns, "always"), "Ready") == "False",
            "pods on the failed host NotReady", timeout=120, transient=True,
        )  # fmt: skip
        wait_for(
            lambda: len(placed := ready_on(lab, ns, "app=hello")) == 3 and host not in placed.values(),
            "3 ready Deployment replicas on the other hosts", transient=True,
        )  # fmt: skip
        old = self.old_kubectl()
        kubectl(lab, "rollout", "status", "deployment/hello", "-n", ns, "--timeout=60s", binary=old)
        assert pod_json(lab, ns, "always")["spec"]["nodeName"] == host, "a tolerating pod was moved"
        survivor = next(h for h in nodes(lab, "host") if h != host)
        wait_endpoints(lab, ns, "hello", 3)
        probe = client_pod(
            "during", ns, survivor, fetch_loop(f"http://hello.{ns}.svc.cluster.local/", 30, "PAGE")
        )
        log = run_probes(lab, ns, [probe])["during"]
        assert len(tagged(log, "PAGE")) == 30, log
        assert not [v for v in tagged(log, "PAGE") if v.startswith("!")], log

    def back(self) -> None:
        lab, ns, host = self.lab, self.namespace, self.HOST
        wait_lab_healthy(lab)
        ghosts = GhostWatch(lab, host)

        def returned() -> bool:
            ghosts.check()
            current = {p["metadata"]["uid"] for p in get_json(lab, "pods", "-n", ns)["items"]}
            web_now = {
                p["metadata"]["name"]: p
                for p in get_json(lab, "pods", "-n", ns, "-l", "app=web")["items"]
                if pod_ready(p)
            }
            always = pod_json(lab, ns, "always")
            return (
                not current & {uid for uid, name in self.old_uids.items() if name.startswith("hello-")}
                and set(web_now) == {"web-0", "web-1", "web-2"}
                and not {web_now[name]["metadata"]["uid"] for name in self.gone_web} & self.old_uids.keys()
                and pod_ready(always)
                and always["status"]["containerStatuses"][0].get("restartCount") == self.restarts + 1
            )

        wait_for(returned, "old Deployment pod gone, web-0..2 back, the pinned pod restarted", transient=True)
        # the restarted host's proxy rebuilt its rules and its pods resolve names again
        probe = client_pod("after", ns, host, fetch_loop(f"http://hello.{ns}.svc.cluster.local/", 5, "PAGE"))
        log = run_probes(lab, ns, [probe])["after"]
        assert len(tagged(log, "PAGE")) == 5, log
        assert not [v for v in tagged(log, "PAGE") if v.startswith("!")], log
        assert ghosts.checks > 0, f"{host} never answered pgrep"
        assert pod_json(lab, ns, "finished")["status"]["phase"] == "Succeeded"
        always_uid = pod_json(lab, ns, "always")["metadata"]["uid"]
        kubectl(lab, "delete", "pod", "always", "finished", "-n", ns, "--timeout=180s")
        assert not any(always_uid in line for line in qemu_lines(lab, host))
        self.cleanup()  # nothing of ours on the host when the exercise pulls its power again


class Maintenance(Rider):
    """Exercise 10 puts esx-03 into maintenance mode: what test_workloads' maintenance test checked.

    The eviction API itself refuses a pod the budget protects: 429 TooManyRequests with upstream's
    message and a cause naming the budget. While the host is emptied, ex10/web never has fewer than
    2 ready replicas (sampled every 0.5 s); the emptied host holds no pod of any namespace and shows
    SchedulingDisabled to the modern kubectl and to Debian's 1.20; after ``exit`` it is schedulable
    and Ready, and no ready replica is on it.
    """

    HOST = "esx-03"
    NAMESPACE = "ex10"

    def __post_init__(self) -> None:
        enter = f"host maintenance enter {self.HOST}"
        self.cues = [
            Cue("get poddisruptionbudget web", 1, "after", self.refused),
            Cue(enter, 1, "before", self.watch),
            Cue(enter, 2, "after", self.emptied),
            Cue(f"host maintenance exit {self.HOST}", 1, "after", self.returned),
        ]
        self.api = LabApi(self.lab)
        self.watcher: PodWatcher | None = None

    def refused(self) -> None:
        ns = self.NAMESPACE

        def settled() -> bool:  # computed by the disruption controller (before, the 429 says so)
            pdb = get_json(self.lab, "poddisruptionbudget", "web", "-n", ns)
            state = pdb.get("status") or {}
            generation = pdb["metadata"].get("generation")
            return state.get("observedGeneration") == generation and state.get("currentHealthy") == 3

        wait_for(settled, "the budget computed", timeout=120)
        victim = next(n for n, on in ready_on(self.lab, ns, "app=web").items() if on == self.HOST)
        eviction = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": victim, "namespace": ns},
        }
        code, body = self.api.request("POST", f"/api/v1/namespaces/{ns}/pods/{victim}/eviction", eviction)
        assert (code, body.get("reason")) == (429, "TooManyRequests"), body
        assert str(body.get("message")).startswith(
            "Cannot evict pod as it would violate the pod's disruption budget"
        ), body
        causes = (body.get("details") or {}).get("causes") or []
        assert any("disruption budget web needs" in str(c.get("message")) for c in causes), body

    def watch(self) -> None:
        self.watcher = PodWatcher(self.api, self.NAMESPACE, "app=web").__enter__()

    def emptied(self) -> None:
        lab, host = self.lab, self.HOST
        left = [
            f"{p['metadata']['namespace']}/{p['metadata']['name']}"
            for p in get_json(lab, "pods", "-A")["items"] if p["spec"].get("nodeName") == host
        ]  # fmt: skip
        assert not left, f"{host} not empty after maintenance enter: {left}"
        for binary in (KUBECTL, self.old_kubectl()):
            assert "SchedulingDisabled" in node_row(lab, host, binary)
        wait_for(
            lambda: len(ready_on(lab, self.NAMESPACE, "app=web")) == 3, "3 ready replicas on the other hosts"
        )

    def returned(self) -> None:
        lab, host, watcher = self.lab, self.HOST, self.watcher
        assert watcher is not None
        watcher.__exit__(None, None, None)
        assert watcher.lowest >= 2, f"ready replicas fell to {watcher.lowest}: {watcher.timeline()}"
        assert host not in ready_on(lab, self.NAMESPACE, "app=web").values()
        assert not get_json(lab, "node", host)["spec"].get("unschedulable")
        assert "SchedulingDisabled" not in node_row(lab, host)
        assert condition(get_json(lab, "node", host), "Ready") == "True"

    def cleanup(self) -> None:
        if self.watcher is not None:
            self.watcher.__exit__(None, None, None)


class Attestation(Rider):
    """Exercise 12 fails esx-02's attestation: what test_trust's unknown-measurement test checked
    beyond the exercise (and the rogue-measurement drill): the Node's Attested condition turns
    False naming the event, `nestlab status` shows FAILED, and a pod that may only run on that host
    stays unscheduled (PodScheduled False, Unschedulable) instead of landing there.
    """

    HOST = "esx-02"

    def __post_init__(self) -> None:
        self.namespace = own_namespace(12)
        self.cues = [Cue(f"nestlab attest {self.HOST}", 2, "after", self.failed)]

    def failed(self) -> None:
        lab, host, ns = self.lab, self.HOST, self.namespace
        attested = next(
            c for c in get_json(lab, "node", host)["status"]["conditions"] if c["type"] == "Attested"
        )
        assert attested["status"] == "False", attested
        assert "rootkit" in attested.get("message", ""), attested
        rows = json.loads(nestlab("status", "--name", lab.name, "--json").stdout)
        assert next(r for r in rows if r["name"] == host)["attestation"].startswith("FAILED"), rows
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "pinned", "namespace": ns},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"kubernetes.io/hostname": host},
                "containers": [{"name": "job", "image": JOB}],
            },
        }
        apply(lab, pod)
        seen: Obj = {}

        def judged() -> bool:
            seen.update(pod_json(lab, ns, "pinned"))
            conditions: list[Obj] = (seen.get("status") or {}).get("conditions") or []
            scheduled = next((c for c in conditions if c["type"] == "PodScheduled"), {})
            return bool(seen["spec"].get("nodeName")) or scheduled.get("reason") == "Unschedulable"

        wait_for(judged, "the scheduler's verdict on a pod only the tainted host could run", SCHEDULER_S)
        assert not seen["spec"].get("nodeName"), "a new pod landed on the tainted host"


class ControlPlane(Rider):
    """Exercise 13 stops the etcd leader's node: what test_control_plane's failure tests checked.

    Right after that stop the rider stops a second control-plane node: without an etcd quorum every
    write is refused (kubectl cannot reach a ready API server, or hears 503), then the node comes
    back. Once the exercise wrote with two of three members, every request through the VIP succeeds
    without a retry (10 reads and 10 writes), and the namespaces written before the quorum loss
    (acknowledged writes) are all still there.
    """

    def __post_init__(self) -> None:
        self.namespace = own_namespace(13)
        self.cues = [
            Cue("nestlab node stop $(", 1, "after", self.quorum_lost),
            Cue("written-without-the-leader", 1, "after", self.answers),
        ]
        self.created = [f"{self.namespace}-a{i}" for i in range(3)]

    def prepare(self) -> None:
        super().prepare()
        for name in self.created:
            kubectl(self.lab, "create", "namespace", name)

    def quorum_lost(self) -> None:
        lab = self.lab
        rows = json.loads(nestlab("status", "--name", lab.name, "--json").stdout)
        running = [r["name"] for r in rows if r["role"] == "control-plane" and r["state"] == "running"]
        assert len(running) == 2, f"the exercise's leader stop left {running} running"
        second = running[0]
        nestlab("node", "stop", second, "--name", lab.name)
        try:
            for i in range(3):
                result = kubectl(
                    lab, "create", "namespace", f"{self.namespace}-q{i}", check=False, timeout=120
                )
                assert result.returncode != 0, "a write was acknowledged without an etcd quorum"
                assert any(m in result.stderr for m in REFUSED), result.stderr
        finally:
            nestlab("node", "start", second, "--name", lab.name, timeout=RESTORE_TIMEOUT_S)
        wait_for(
            lambda: kubectl(lab, "get", "--raw", "/readyz", check=False).returncode == 0,
            "the API ready again with two of three etcd members", RESTORE_TIMEOUT_S,
        )  # fmt: skip

    def answers(self) -> None:
        lab, ns = self.lab, self.namespace
        for i in range(10):  # no retries: every request through the VIP must succeed
            kubectl(lab, "get", "namespace", ns)
            kubectl(lab, "create", "namespace", f"{ns}-k{i}")
            self.created.append(f"{ns}-k{i}")
        names = kubectl(lab, "get", "namespaces", "-o", "name").stdout
        missing = [name for name in self.created if f"namespace/{name}" not in names]
        assert not missing, f"acknowledged writes lost: {missing}"

    def cleanup(self) -> None:
        for name in self.created:
            kubectl(self.lab, "delete", "namespace", name, "--wait=false", check=False)
        super().cleanup()


RIDERS: dict[int, type[Rider]] = {9: HostFailure, 10: Maintenance, 12: Attestation, 13: ControlPlane}


def for_exercise(number: int, lab: LiveLab, old_kubectl: Callable[[], str]) -> Rider:
    """The checks riding on exercise ``number`` (a rider with none when it has no rider)."""
    return RIDERS.get(number, Rider)(lab, old_kubectl)
