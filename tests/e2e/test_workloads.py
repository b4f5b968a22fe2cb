"""Workloads that outlive their hosts, on the teaching lab, with modern kubectl and Debian's 1.20.

A vSphere Pod is never vMotioned or restarted elsewhere: Deployments, StatefulSets and Jobs keep
an application up by creating new pods, and maintenance mode empties a host through the eviction
API and PodDisruptionBudgets. Checked here (issue 11, "What it must show"):

- an eviction a budget forbids is refused with 429 naming the budget (the other refusals:
  test_workload_refusals.py);
- a 3-replica Deployment spreads over the 3 hosts; ``--cascade=orphan`` keeps its ReplicaSet and
  pods, a foreground delete of the ReplicaSet takes its pods, a background delete of a Deployment
  takes every ReplicaSet and pod it had;
- a rolling update with maxUnavailable 0 never has fewer than 3 ready replicas, and undo returns;
- a Job (completions 5, parallelism 2) completes, a CronJob fires;
- maintenance mode waits for a budget that blocks it, then empties the host keeping 2 ready;
- one host-stop cycle (the most expensive thing here, so it serves four checks): the Deployment
  is back to 3 ready replicas on the other hosts and its Service answers every request from a
  surviving host by name (cluster DNS without the cp node the host took down), the StatefulSet's
  pods come back under their names, pods pinned to the host (tolerating its failure) run again
  there once it restarts, its proxy and DNS serve its pods again, and no pod is ever reported
  Running on that host without its QEMU.

The tests run in this order, the disruptive ones last; each restores what it broke (uncordon,
host started, every Node Ready) so the next module starts from a healthy lab.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.conftest import KUBECTL, LiveLab, nestlab
from tests.e2e.labtools import (
    POD_TIMEOUT_S,
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
from tests.e2e.services import client_pod, fetch_loop, run_probes, tagged, wait_endpoints
from tests.e2e.workloads import (
    JOB,
    LIMITS,
    NEW_WEB,
    SURGE,
    WEB,
    GhostWatch,
    PodWatcher,
    deployment,
    owned_by,
    pod_ready,
    statefulset,
    template,
)

pytestmark = [pytest.mark.e2e, pytest.mark.root]
Obj = dict[str, Any]

MAINTENANCE_HOST = "esx-02"  # the host; it carries lb-2 and cp-2, never the depot
CRON_FIRST_JOB_S = 150.0  # "*/1 * * * *" fires within 60 s of creation; margin for a loaded controller
FOREVER = [
    {"key": key, "operator": "Exists", "effect": "NoExecute"}
    for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
]  # no tolerationSeconds: stays bound to a failed host however long it is down


def pods(lab: LiveLab, namespace: str, selector: str, binary: str = KUBECTL) -> list[Obj]:
    return list(get_json(lab, "pods", "-n", namespace, "-l", selector, binary=binary)["items"])


def ready_on(lab: LiveLab, namespace: str, selector: str) -> dict[str, str]:
    """name -> host of the Ready (and not deleted) pods matching ``selector``."""
    return {
        p["metadata"]["name"]: p["spec"]["nodeName"] for p in pods(lab, namespace, selector) if pod_ready(p)
    }


def rollout_status(lab: LiveLab, namespace: str, what: str, binary: str = KUBECTL) -> None:
    kubectl(lab, "rollout", "status", what, "-n", namespace, f"--timeout={POD_TIMEOUT_S:.0f}s", binary=binary)


def test_deployment_spreads_and_deletion_orphans_or_cascades(
    agents: LiveLab, namespace: str, kubectl_binary: str
) -> None:
    apply(agents, deployment("hello", namespace), binary=kubectl_binary)
    rollout_status(agents, namespace, "deployment/hello", kubectl_binary)
    placed = ready_on(agents, namespace, "app=hello")
    assert len(placed) == 3, placed
    assert len(set(placed.values())) == 3, f"not one replica per host: {placed}"
    wide = kubectl(agents, "get", "pods", "-n", namespace, "-o", "wide", binary=kubectl_binary).stdout
    assert all(name in wide and host in wide for name, host in placed.items()), wide

    (rs,) = get_json(agents, "replicasets", "-n", namespace, "-l", "app=hello")["items"]
    assert owned_by(rs, "Deployment", "hello"), rs["metadata"]
    rs_name = rs["metadata"]["name"]
    uids = {p["metadata"]["uid"] for p in pods(agents, namespace, "app=hello")}
    kubectl(
        agents, "delete", "deployment", "hello", "-n", namespace, "--cascade=orphan", binary=kubectl_binary
    )

    def orphaned() -> bool:  # the garbage collector drops the owner reference, keeps the object
        found = get_json(agents, "replicasets", "-n", namespace)["items"]
        return [r["metadata"]["name"] for r in found if not owned_by(r, "Deployment")] == [rs_name]

    wait_for(orphaned, f"ReplicaSet {rs_name} kept without its Deployment", timeout=120)
    assert not get_json(agents, "deployments", "-n", namespace)["items"]
    kept = pods(agents, namespace, "app=hello")
    assert {p["metadata"]["uid"] for p in kept} == uids, "orphan took pods"
    assert all(owned_by(p, "ReplicaSet", rs_name) for p in kept), "the pods lost their ReplicaSet"

    kubectl(
        agents, "delete", "replicaset", rs_name, "-n", namespace, "--cascade=foreground", "--timeout=300s",
        binary=kubectl_binary,
    )  # fmt: skip
    wait_for(lambda: not pods(agents, namespace, "app=hello"), "the ReplicaSet's pods deleted", timeout=300)


def test_rolling_update_never_drops_below_three_ready_and_undo_returns(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    old = kubectl_old
    apply(agents, deployment("web", namespace, strategy=SURGE))
    rollout_status(agents, namespace, "deployment/web")

    def images() -> set[str]:
        return {
            p["spec"]["containers"][0]["image"] for p in pods(agents, namespace, "app=web") if pod_ready(p)
        }

    with PodWatcher(LabApi(agents), namespace, "app=web") as watcher:
        kubectl(agents, "set", "image", "deployment/web", f"web={NEW_WEB}", "-n", namespace)
        rollout_status(agents, namespace, "deployment/web")
        wait_for(lambda: images() == {NEW_WEB}, "only new-image pods ready", timeout=120)
        kubectl(agents, "rollout", "undo", "deployment/web", "-n", namespace, binary=old)
        rollout_status(agents, namespace, "deployment/web", old)
        wait_for(lambda: images() == {WEB}, "only old-image pods ready after undo", timeout=120)
    assert watcher.lowest >= 3, f"ready replicas fell to {watcher.lowest}: {watcher.timeline()}"
    history = kubectl(agents, "rollout", "history", "deployment/web", "-n", namespace, binary=old).stdout
    revisions = [line.split()[0] for line in history.splitlines() if line[:1].isdigit()]
    assert revisions == ["2", "3"], history  # undo makes revision 1's template revision 3, as upstream

    assert len(get_json(agents, "replicasets", "-n", namespace, "-l", "app=web")["items"]) == 2
    kubectl(agents, "delete", "deployment", "web", "-n", namespace)  # background propagation
    wait_for(
        lambda: (
            not get_json(agents, "replicasets", "-n", namespace)["items"]
            and not pods(agents, namespace, "app=web")
        ),
        "every ReplicaSet and pod of the deleted Deployment gone",
        timeout=300,
    )


def test_job_completes_five_two_at_a_time_and_cronjob_fires(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    old = kubectl_old
    pod_template = {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "image": JOB, "resources": LIMITS}]}
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "count", "namespace": namespace},
        "spec": {"completions": 5, "parallelism": 2, "backoffLimit": 2, "template": pod_template},
    }

    def active(pod: Obj) -> bool:  # what the Job controller counts against parallelism
        phase = (pod.get("status") or {}).get("phase")
        deleting = pod["metadata"].get("deletionTimestamp")
        return owned_by(pod, "Job", "count") and phase not in ("Succeeded", "Failed") and not deleting

    with PodWatcher(LabApi(agents), namespace, count=active) as watcher:
        apply(agents, job)
        kubectl(
            agents,
            "wait",
            "--for=condition=complete",
            "job/count",
            "-n",
            namespace,
            f"--timeout={POD_TIMEOUT_S:.0f}s",
        )
    kubectl(
        agents, "wait", "--for=condition=complete", "job/count", "-n", namespace, "--timeout=30s", binary=old
    )
    assert (
        kubectl(
            agents, "get", "job", "count", "-n", namespace, "-o", "jsonpath={.status.succeeded}", binary=old
        ).stdout
        == "5"
    )
    assert watcher.highest <= 2, f"more than parallelism 2 pods at once: {watcher.timeline()}"
    succeeded = [
        p for p in get_json(agents, "pods", "-n", namespace)["items"]
        if owned_by(p, "Job", "count") and p["status"].get("phase") == "Succeeded"
    ]  # fmt: skip
    assert len(succeeded) == 5

    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "tick", "namespace": namespace},
        "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": pod_template}}},
    }
    apply(agents, cron, binary=old)
    wait_for(
        lambda: any(
            owned_by(j, "CronJob", "tick") for j in get_json(agents, "jobs", "-n", namespace)["items"]
        ),
        "the CronJob's first Job",
        timeout=CRON_FIRST_JOB_S,
    )
    assert kubectl(
        agents, "get", "cronjob", "tick", "-n", namespace, "-o", "jsonpath={.status.lastScheduleTime}"
    ).stdout
    kubectl(agents, "delete", "cronjob", "tick", "-n", namespace)


def budget_settled(lab: LiveLab, namespace: str, name: str, healthy: int) -> bool:
    """The disruption controller has computed the budget's current generation."""
    pdb = get_json(lab, "poddisruptionbudget", name, "-n", namespace)
    state = pdb.get("status") or {}
    return (
        state.get("observedGeneration") == pdb["metadata"].get("generation")
        and state.get("currentHealthy") == healthy
    )


def node_row(lab: LiveLab, name: str, binary: str = KUBECTL) -> str:
    out = kubectl(lab, "get", "nodes", "--no-headers", binary=binary).stdout
    return next(line for line in out.splitlines() if line.split()[:1] == [name])


def test_maintenance_mode_waits_for_the_budget_then_empties_the_host(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    host, lab = MAINTENANCE_HOST, agents.name
    apply(agents, deployment("web", namespace))
    rollout_status(agents, namespace, "deployment/web")
    placed = ready_on(agents, namespace, "app=web")
    assert host in placed.values(), f"no replica on {host}: {placed}"
    pdb = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "web-budget", "namespace": namespace},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}},
    }
    apply(agents, pdb)
    wait_for(lambda: budget_settled(agents, namespace, "web-budget", 3), "the budget computed", timeout=120)
    victim = next(name for name, on in placed.items() if on == host)
    api = LabApi(agents)
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": victim, "namespace": namespace},
    }
    code, body = api.request("POST", f"/api/v1/namespaces/{namespace}/pods/{victim}/eviction", eviction)
    assert (code, body.get("reason")) == (429, "TooManyRequests"), body
    assert body.get("message") == "Cannot evict pod as it would violate the pod's disruption budget."
    assert "web-budget" in json.dumps(body.get("details")), body

    try:
        with PodWatcher(api, namespace, "app=web") as watcher:
            blocked = nestlab(
                "host", "maintenance", "enter", host, "--name", lab, "--timeout", "30", check=False
            )
            assert blocked.returncode != 0, blocked.stdout
            assert "web-budget" in blocked.stdout + blocked.stderr, blocked.stdout + blocked.stderr
            kubectl(
                agents,
                "patch",
                "poddisruptionbudget",
                "web-budget",
                "-n",
                namespace,
                "--type=merge",
                "-p",
                '{"spec":{"minAvailable":2}}',
            )
            wait_for(
                lambda: budget_settled(agents, namespace, "web-budget", 3), "the relaxed budget", timeout=120
            )
            nestlab(
                "host",
                "maintenance",
                "enter",
                host,
                "--name",
                lab,
                "--timeout",
                f"{POD_TIMEOUT_S:.0f}",
                timeout=POD_TIMEOUT_S + 60,
            )
            left = [
                f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in get_json(agents, "pods", "-A")["items"] if p["spec"].get("nodeName") == host
            ]  # fmt: skip
            assert not left, f"{host} not empty after maintenance enter: {left}"
            for binary in (KUBECTL, kubectl_old):
                assert "SchedulingDisabled" in node_row(agents, host, binary)
            wait_for(
                lambda: len(ready_on(agents, namespace, "app=web")) == 3,
                "3 ready replicas on the other hosts",
            )
        assert watcher.lowest >= 2, f"ready replicas fell to {watcher.lowest}: {watcher.timeline()}"
        assert host not in ready_on(agents, namespace, "app=web").values()
    finally:
        nestlab("host", "maintenance", "exit", host, "--name", lab, check=False)
    assert not get_json(agents, "node", host)["spec"].get("unschedulable")
    assert "SchedulingDisabled" not in node_row(agents, host)
    assert condition(get_json(agents, "node", host), "Ready") == "True"


def pinned(name: str, namespace: str, host: str, image: str, restart: str) -> Obj:
    spec = template(name, image, nodeName=host, restartPolicy=restart, tolerations=FOREVER)["spec"]
    if image == JOB:
        del spec["containers"][0]["command"]  # the job image's own command: print, exit 0
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def test_host_failure_pods_recreated_elsewhere_and_back_after_restart(
    agents: LiveLab, namespace: str, kubectl_old: str
) -> None:
    # One host-stop cycle serves the Deployment, the StatefulSet and the host-restart checks.
    lab, old = agents, kubectl_old
    apply(lab, deployment("hello", namespace))
    apply(lab, statefulset("web", namespace))
    rollout_status(lab, namespace, "deployment/hello")
    wait_for(lambda: len(ready_on(lab, namespace, "app=web")) == 3, "web-0..2 ready")
    hello, web = ready_on(lab, namespace, "app=hello"), ready_on(lab, namespace, "app=web")
    assert len(set(hello.values())) == 3, f"not one replica per host: {hello}"
    depot_host = placed_on(lab, "depot")  # stopping it would take the registry the replacements pull from
    candidates = [h for h in nodes(lab, "host") if h != depot_host and h in web.values()]
    assert candidates, f"no StatefulSet pod on a host that can be stopped: {web}"
    host = MAINTENANCE_HOST if MAINTENANCE_HOST in candidates else candidates[0]
    gone_web = {name for name, on in web.items() if on == host}
    old_uids = {
        p["metadata"]["uid"]: p["metadata"]["name"]
        for p in get_json(lab, "pods", "-n", namespace)["items"]
        if p["spec"].get("nodeName") == host
    }
    apply(lab, pinned("always", namespace, host, WEB, "Always"))
    apply(lab, pinned("finished", namespace, host, JOB, "Never"))
    always = wait_phase(lab, namespace, "always", ("Running", "Failed"))
    assert always["status"]["phase"] == "Running", json.dumps(always["status"])
    assert wait_phase(lab, namespace, "finished", ("Succeeded", "Failed"))["status"]["phase"] == "Succeeded"
    restarts = always["status"]["containerStatuses"][0].get("restartCount", 0)

    kubectl(lab, "expose", "deployment", "hello", "-n", namespace, "--port=80")  # the Service across it
    nestlab("node", "stop", host, "--name", lab.name)
    try:

        def detected() -> bool:
            node = get_json(lab, "node", host)
            taints = {(t.get("key"), t.get("effect")) for t in node["spec"].get("taints") or []}
            return (
                condition(node, "Ready") != "True"
                and ("node.kubernetes.io/unreachable", "NoExecute") in taints
            )

        wait_for(detected, f"{host} NotReady with the unreachable:NoExecute taint", 180, transient=True)
        wait_for(
            lambda: condition(pod_json(lab, namespace, "always"), "Ready") == "False",
            "pods on the failed host NotReady",
            timeout=120,
            transient=True,
        )
        wait_for(
            lambda: len(placed := ready_on(lab, namespace, "app=hello")) == 3 and host not in placed.values(),
            "3 ready Deployment replicas on the other hosts",
            transient=True,
        )
        kubectl(lab, "rollout", "status", "deployment/hello", "-n", namespace, "--timeout=60s", binary=old)
        assert pod_json(lab, namespace, "always")["spec"]["nodeName"] == host, "a tolerating pod was moved"
        # the Service follows the replacements, and DNS answers without the cp node the host took down
        survivor = next(h for h in nodes(lab, "host") if h != host)
        wait_endpoints(lab, namespace, "hello", 3)
        url = f"http://hello.{namespace}.svc.cluster.local/"
        probe = client_pod("during", namespace, survivor, fetch_loop(url, 30, tag="PAGE"))
        log = run_probes(lab, namespace, [probe])["during"]
        assert len(tagged(log, "PAGE")) == 30, log
        assert not [v for v in tagged(log, "PAGE") if v.startswith("!")], log
    finally:
        nestlab("node", "start", host, "--name", lab.name, timeout=RESTORE_TIMEOUT_S)
        wait_lab_healthy(lab)

    ghosts = GhostWatch(lab, host)

    def back() -> bool:
        ghosts.check()
        current = {p["metadata"]["uid"] for p in get_json(lab, "pods", "-n", namespace)["items"]}
        web_now = {p["metadata"]["name"]: p for p in pods(lab, namespace, "app=web") if pod_ready(p)}
        always_now = pod_json(lab, namespace, "always")
        return (
            not current & {uid for uid, name in old_uids.items() if name.startswith("hello-")}
            and set(web_now) == {"web-0", "web-1", "web-2"}
            and not {web_now[name]["metadata"]["uid"] for name in gone_web} & old_uids.keys()
            and pod_ready(always_now)
            and always_now["status"]["containerStatuses"][0].get("restartCount") == restarts + 1
        )

    wait_for(back, "old Deployment pod gone, web-0..2 back, the pinned pod restarted", transient=True)
    # the restarted host's proxy rebuilt its rules and its pods resolve names again
    probe = client_pod(
        "after", namespace, host, fetch_loop(f"http://hello.{namespace}.svc.cluster.local/", 5, "PAGE")
    )
    log = run_probes(lab, namespace, [probe])["after"]
    assert len(tagged(log, "PAGE")) == 5, log
    assert not [v for v in tagged(log, "PAGE") if v.startswith("!")], log
    assert ghosts.checks > 0, f"{host} never answered pgrep"
    assert pod_json(lab, namespace, "finished")["status"]["phase"] == "Succeeded"
    always_uid = pod_json(lab, namespace, "always")["metadata"]["uid"]
    kubectl(lab, "delete", "pod", "always", "finished", "-n", namespace, "--timeout=180s")
    assert not any(always_uid in line for line in qemu_lines(lab, host))
