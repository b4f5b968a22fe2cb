"""The frame of the checks that ride on an exercise's disruption (tests/e2e/riders.py has them).

A :class:`Rider` prepares objects in a namespace of its own before the exercise's first command,
makes its checks just before or after the exercise commands it names (each a :class:`Cue`: a text
the command holds and which occurrence), and cleans up after the exercise, passed or failed. A cue
that never came is a failure (:meth:`Rider.missed`): a changed Markdown must not silently drop a
check. The helpers here read the lab as those checks need it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.e2e.conftest import KUBECTL, LiveLab
from tests.e2e.labtools import get_json, kubectl
from tests.e2e.workloads import JOB, pod_ready, template

Obj = dict[str, Any]
When = Literal["before", "after"]
FOREVER = [
    {"key": key, "operator": "Exists", "effect": "NoExecute"}
    for key in ("node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready")
]  # no tolerationSeconds: stays bound to a failed host however long it is down


@dataclass
class Cue:
    """Run ``act`` just ``when`` the ``nth`` exercise command whose text holds ``marker`` runs."""

    marker: str
    nth: int
    when: When
    act: Callable[[], None]
    seen: int = 0
    fired: bool = False

    def step(self, text: str, when: When) -> None:
        if when != self.when or self.marker not in text:
            return
        self.seen += 1
        if self.seen == self.nth:
            self.fired = True
            self.act()


@dataclass
class Rider:
    """Checks riding on one exercise; subclasses fill :attr:`cues` and override the hooks."""

    lab: LiveLab
    old_kubectl: Callable[[], str]
    """Debian's kubectl 1.20 (fetched on first use)."""
    cues: list[Cue] = field(default_factory=list)
    namespace: str = ""
    """A namespace of the rider's own ("" when it needs none)."""

    def __post_init__(self) -> None:
        """Subclasses name their cues (and namespace) here."""

    def prepare(self) -> None:
        """Before the exercise's first command."""
        if self.namespace:
            kubectl(self.lab, "create", "namespace", self.namespace)

    def step(self, text: str, when: When) -> None:
        for cue in self.cues:
            cue.step(text, when)

    def cleanup(self) -> None:
        """After the exercise, passed or not (before its reset)."""
        if self.namespace:
            kubectl(self.lab, "delete", "namespace", self.namespace, "--wait=false", check=False)

    def missed(self) -> list[str]:
        """The cues that never came: the exercise's Markdown no longer has the command they name."""
        return [f"{c.when} the {c.nth}. command holding {c.marker!r}" for c in self.cues if not c.fired]


def own_namespace(exercise: int) -> str:
    return f"ride{exercise:02d}-{uuid.uuid4().hex[:6]}"


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


def ready_on(lab: LiveLab, namespace: str, selector: str) -> dict[str, str]:
    """name -> host of the Ready (and not deleted) pods matching ``selector``."""
    found = get_json(lab, "pods", "-n", namespace, "-l", selector)["items"]
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in found if pod_ready(p)}


def node_row(lab: LiveLab, name: str, binary: str = KUBECTL) -> str:
    out = kubectl(lab, "get", "nodes", "--no-headers", binary=binary).stdout
    return next(line for line in out.splitlines() if line.split()[:1] == [name])
