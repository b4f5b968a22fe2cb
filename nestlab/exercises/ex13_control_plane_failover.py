"""Exercise 13, control-plane failover: done when, since namespace ex13 was made, the VIP moved to
lb-2 (keepalived on lb-2 entered MASTER state) and etcd elected a new leader (a member logged
"became leader"), the two ConfigMaps written during the failures exist, and the control plane is
whole again: lb-1 holds the VIP, every etcd member answers (docs/exercises/13-control-plane-failover.md).

The journals of the nodes are the record: keepalived and etcd log every state change, and they
survive a node stop (the nodes' journals are persistent).
"""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces
from nestlab.exercises.ex09_host_failure import restore_lab, timestamp, wait_until

NAMESPACE = "ex13"
CONTROL_PLANE = ("cp-1", "cp-2", "cp-3")
CONFIGMAPS = ("written-without-lb-1", "written-without-the-leader")
ETCDCTL = (
    "etcdctl --cacert=/etc/nestlab/pki/ca.crt --cert=/etc/nestlab/pki/node.crt "
    "--key=/etc/nestlab/pki/node.key"
)
CONTROL_PLANE_TIMEOUT_S = 180.0  # etcd rejoins and HAProxy marks a server UP within seconds of a start


def journal_count(lab: Lab, node: str, unit: str, since: int, text: str) -> int:
    """How many lines of ``unit``'s journal on ``node`` since ``since`` (epoch s) hold ``text``."""
    out = lab.ssh(
        node,
        f"journalctl -u {unit} --since @{since} --no-pager -q | grep -c '{text}' || true",
        check=False,
    ).strip()
    return int(out) if out.isdigit() else 0


def holds_vip(lab: Lab, lb: str) -> bool:
    """Whether ``lb`` holds the VIP (keepalived adds it as the secondary address of host0)."""
    return "secondary" in lab.ssh(lb, "ip -4 -o addr show", check=False)


def control_plane_problem(lab: Lab) -> str | None:
    """None when lb-1 holds the VIP again and every etcd member answers on its node."""
    if not holds_vip(lab, "lb-1"):
        return "lb-1 does not hold the VIP"
    for cp in CONTROL_PLANE:
        if "127.0.0.1:2379," not in lab.ssh(cp, f"{ETCDCTL} endpoint status", check=False):
            return f"etcd on {cp} does not answer"
    return None


def check(lab: Lab) -> list[str]:
    """What of the two failovers and the restore is still missing."""
    namespace = lab.get(f"/api/v1/namespaces/{NAMESPACE}")
    if namespace is None:
        return ["there is no namespace ex13 (step 3)"]
    began = timestamp((namespace.get("metadata") or {}).get("creationTimestamp"))
    since = int(began.timestamp()) if began is not None else 0
    missing: list[str] = []
    for name in CONFIGMAPS:
        if lab.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}") is None:
            missing.append(f"there is no ConfigMap ex13/{name} (written during a failure: steps 5 and 8)")
    if journal_count(lab, "lb-2", "keepalived", since, "Entering MASTER STATE") == 0:
        missing.append("the VIP has not moved to lb-2 since ex13 began: stop lb-1 (step 4)")
    if not any(journal_count(lab, cp, "etcd", since, "became leader at term") for cp in CONTROL_PLANE):
        missing.append("etcd has not elected a new leader since ex13 began: stop its leader's node (step 7)")
    stopped = [node for node in ("lb-1", *CONTROL_PLANE) if not lab.node_running(node)]
    if stopped:
        missing.append(
            f"still stopped: {', '.join(stopped)} (`.venv/bin/nestlab node start NODE`, steps 6 and 9)"
        )
    else:
        problem = control_plane_problem(lab)
        if problem:
            missing.append(f"the control plane is not whole again: {problem}")
    return missing


def reset(lab: Lab) -> None:
    """Start every stopped node, wait until lb-1 holds the VIP and etcd is whole, delete ex13."""
    restore_lab(lab)
    wait_until(lambda: control_plane_problem(lab), CONTROL_PLANE_TIMEOUT_S)
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=13,
    slug="control-plane-failover",
    title="Control-plane failover",
    minutes=15,
    check=check,
    reset=reset,
    destructive=True,
)
