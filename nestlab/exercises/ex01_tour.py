"""Exercise 1, a tour of the lab: done when ConfigMap ex01/tour records the control plane's VIP,
the number of hosts and the scheduler's leader (docs/exercises/01-tour.md)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces

NAMESPACE = "ex01"
STEP = "step 7"
_CONTROL_PLANE = re.compile(r"^cp-\d+$")


def check(lab: Lab) -> list[str]:
    """What the tour's record still lacks."""
    if lab.get(f"/api/v1/namespaces/{NAMESPACE}") is None:
        return [f"namespace {NAMESPACE} does not exist ({STEP}: kubectl create namespace {NAMESPACE})"]
    tour = lab.get(f"/api/v1/namespaces/{NAMESPACE}/configmaps/tour")
    if tour is None:
        return [f"there is no ConfigMap tour in namespace {NAMESPACE} ({STEP})"]
    data = tour.get("data") or {}
    missing = []
    server = lab.kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}").strip()
    vip = urlparse(server).hostname or server
    if vip not in str(data.get("vip", "")):
        missing.append(f"the tour's vip is {data.get('vip')!r}; the control plane answers at {server}")
    hosts = len(lab.items("/api/v1/nodes"))
    if str(data.get("hosts", "")).strip() != str(hosts):
        missing.append(f"the tour's hosts is {data.get('hosts')!r}; the lab has {hosts} Nodes")
    if not _CONTROL_PLANE.match(str(data.get("scheduler-leader", ""))):
        missing.append(
            f"the tour's scheduler-leader is {data.get('scheduler-leader')!r}; "
            "it should name the control-plane node holding Lease kube-system/nestlab-scheduler"
        )
    return missing


def reset(lab: Lab) -> None:
    """Delete namespace ex01."""
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(number=1, slug="tour", title="A tour of the lab", minutes=15, check=check, reset=reset)
