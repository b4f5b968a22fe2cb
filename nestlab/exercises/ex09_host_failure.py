"""Exercise 9, a host fails: done when a pod of Deployment ex09/web was evicted from a failed host
(the taint manager's ``TaintManagerEviction`` Event), its ReplicaSet created a replacement after
that, esx-02 is back and Ready, and the Deployment has its 3 replicas ready
(docs/exercises/09-host-failure.md).

The module also holds what every failure exercise (9-13) needs to put a broken lab back, so that
each reset ends on the same healthy lab: every stopped node started, no host left in maintenance
mode, every Node Ready without the failure taints, and the API answering through the VIP.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from nestlab.errors import NestlabError, UsageError
from nestlab.exercises.base import Exercise, Lab, Obj
from nestlab.exercises.common import delete_namespaces

NAMESPACE = "ex09"
HOST = "esx-02"
RESTORE_TIMEOUT_S = 300.0  # a host start and its Node Ready take ~15 s on the lab; room for a loaded machine
POLL_S = 2.0  # the format's retry interval, for the same reason: cheap reads, a lab that moves in seconds
LAB_NODES = ("esx-01", "esx-02", "esx-03", "depot", "lb-1", "lb-2", "cp-1", "cp-2", "cp-3")
"""The teaching lab's nodes (``nestlab plan``), hosts first; the exercises are written for it."""
FAILURE_TAINTS = frozenset({"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"})

Problem = Callable[[], "str | None"]
"""A health probe: None when fine, else one sentence saying what is still wrong."""


def stopped_nodes(lab: Lab) -> list[str]:
    """The teaching lab's nodes whose machine does not run, hosts first: starting a host starts the
    nodes placed on it. (The substrate's view: no SSH, so this is cheap enough to poll.)"""
    stopped = []
    for name in LAB_NODES:
        try:
            if not lab.node_running(name):
                stopped.append(name)
        except (
            UsageError
        ):  # a lab made from another spec may lack a node; the exercises name the ones they use
            continue
    return stopped


def condition(obj: Obj, kind: str) -> Obj:
    """The status condition of that type, or {}."""
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return {}


def timestamp(value: object) -> datetime | None:
    """An API time (``2026-12-06T02:15:03Z``, fractions allowed), or None."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def event_time(event: Obj) -> datetime | None:
    """When an Event happened (its first time, whichever field the recorder filled)."""
    meta = event.get("metadata") or {}
    for value in (event.get("firstTimestamp"), event.get("eventTime"), meta.get("creationTimestamp")):
        if value:
            return timestamp(value)
    return None


def api_answers(lab: Lab) -> str | None:
    """None when ``/readyz`` answers ok through the VIP (the kubeconfig's server)."""
    answer = lab.kubectl("get", "--raw", "/readyz", check=False).strip()
    return (
        None
        if answer == "ok"
        else f"the API does not answer /readyz through the VIP ({answer or 'no answer'})"
    )


def node_problem(node: Obj) -> str | None:
    """Why a host's Node is not back to normal, or None."""
    name = (node.get("metadata") or {}).get("name", "?")
    if condition(node, "Ready").get("status") != "True":
        return f"Node {name} is not Ready"
    if (node.get("spec") or {}).get("unschedulable"):
        return f"host {name} is still cordoned (maintenance mode)"
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") in FAILURE_TAINTS:
            return f"Node {name} still has the taint {taint['key']}"
    return None


def lab_problem(lab: Lab) -> str | None:
    """None when the lab is whole: every node running, every Node healthy, the API answering.

    Only the lab's own hosts count: a Node registered by something else (a bench's simulated
    hosts, left NotReady when it ended) is not the teaching lab's to restore.
    """
    try:
        stopped = stopped_nodes(lab)
        if stopped:
            return f"stopped: {', '.join(stopped)}"
        for node in lab.items("/api/v1/nodes"):
            if (node.get("metadata") or {}).get("name") not in LAB_NODES:
                continue
            problem = node_problem(node)
            if problem:
                return problem
        return api_answers(lab)
    except NestlabError as exc:  # the API or SSH is still coming back
        return str(exc)


def wait_until(
    problem: Problem,
    timeout: float = RESTORE_TIMEOUT_S,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll ``problem`` until it says None; NestlabError naming the last problem after ``timeout``."""
    deadline = clock() + timeout
    while True:
        why = problem()
        if why is None:
            return
        if clock() >= deadline:
            raise NestlabError(f"the lab is not back after {timeout:g}s: {why}")
        sleep(POLL_S)


def restore_lab(
    lab: Lab,
    timeout: float = RESTORE_TIMEOUT_S,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Start every stopped node, take every host out of maintenance mode, wait until the lab is whole."""
    for name in stopped_nodes(lab):
        if not lab.node_running(name):  # starting a host may have started it already
            lab.nestlab("node", "start", name)

    def api_problem() -> str | None:
        try:
            return api_answers(lab)
        except NestlabError as exc:
            return str(exc)

    wait_until(api_problem, timeout, clock=clock, sleep=sleep)
    for node in lab.items("/api/v1/nodes"):
        if (node.get("spec") or {}).get("unschedulable"):
            lab.nestlab("host", "maintenance", "exit", str(node["metadata"]["name"]))
    wait_until(lambda: lab_problem(lab), timeout, clock=clock, sleep=sleep)


def check(lab: Lab) -> list[str]:
    """What of the failure, the replacement and the return of esx-02 is still missing."""
    deployment = lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web")
    if deployment is None:
        return ["there is no Deployment ex09/web: create it with 3 replicas (step 1)"]
    missing: list[str] = []
    wanted = (deployment.get("spec") or {}).get("replicas")
    if wanted != 3:
        missing.append(f"Deployment ex09/web asks for {wanted} replicas, not 3 (step 1)")
    events = lab.items(f"/api/v1/namespaces/{NAMESPACE}/events")
    evicted = [
        event_time(e)
        for e in events
        if e.get("reason") == "TaintManagerEviction"
        and str((e.get("involvedObject") or {}).get("name", "")).startswith("web-")
    ]
    evictions = [t for t in evicted if t is not None]
    if not evictions:
        missing.append(
            "no pod of ex09/web was evicted from a failed host yet: stop esx-02 (step 4) "
            "and wait for its pod to turn Terminating (about a minute)"
        )
    else:
        first = min(evictions)
        replaced = [
            e
            for e in events
            if e.get("reason") == "SuccessfulCreate"
            and (e.get("involvedObject") or {}).get("kind") == "ReplicaSet"
            and str((e.get("involvedObject") or {}).get("name", "")).startswith("web-")
            and (event_time(e) or first) >= first
        ]
        if not replaced:
            missing.append("the ReplicaSet of ex09/web created no replacement pod after the eviction")
    node = lab.get(f"/api/v1/nodes/{HOST}")
    if not lab.node_running(HOST) or node is None or condition(node, "Ready").get("status") != "True":
        missing.append(f"{HOST} is not back and Ready: `.venv/bin/nestlab node start {HOST}` (step 8)")
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    if ready < 3:
        missing.append(f"Deployment ex09/web has {ready} of 3 replicas ready")
    return missing


def reset(lab: Lab) -> None:
    """Start esx-02 (and anything else stopped), wait for a healthy lab, delete namespace ex09."""
    restore_lab(lab)
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=9,
    slug="host-failure",
    title="A host fails",
    minutes=15,
    check=check,
    reset=reset,
    destructive=True,
)
