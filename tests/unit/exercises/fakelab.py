"""A fake :class:`nestlab.exercises.base.Lab` for the exercises' unit tests: objects by API path,
canned command output, and a record of what was run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass
class FakeLab:
    name: str = "fake"
    objects: dict[str, Obj] = field(default_factory=dict)
    lists: dict[str, list[Obj]] = field(default_factory=dict)
    kubectl_out: Callable[[tuple[str, ...]], str] = lambda args: ""
    nestlab_out: Callable[[tuple[str, ...]], str] = lambda args: ""
    ssh_out: Callable[[str, str], str] = lambda node, command: ""
    stopped: set[str] = field(default_factory=set)
    ran: list[tuple[str, ...]] = field(default_factory=list)

    def get(self, path: str) -> Obj | None:
        return self.objects.get(path)

    def items(self, path: str) -> list[Obj]:
        return self.lists.get(path, [])

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.ran.append(("kubectl", *args))
        return self.kubectl_out(args)

    def nestlab(self, *args: str, check: bool = True) -> str:
        self.ran.append(("nestlab", *args))
        return self.nestlab_out(args)

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        self.ran.append(("ssh", node, command))
        return self.ssh_out(node, command)

    def node_running(self, node: str) -> bool:
        return node not in self.stopped


def running_pod(
    namespace: str, name: str, *, node: str = "esx-01", restarts: int = 0, image: str = "img", **meta: Any
) -> Obj:
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}", **meta},
        "spec": {"nodeName": node, "containers": [{"name": name, "image": image}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": name, "ready": True, "restartCount": restarts, "imageID": "sha256:abc123"}
            ],
        },
    }
