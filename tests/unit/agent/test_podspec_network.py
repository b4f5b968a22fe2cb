"""Pod spec translation (commands, env, users, admission) and the pod network's ip calls, with a fake runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from nestlab.agent import podspec
from nestlab.agent.images import Digest, Image, ImageConfig
from nestlab.agent.network import PodNetwork, PodNetworkError, tap_name
from nestlab.runtime import proc
from nestlab.runtime.poddesc import ContainerName

IMG = ImageConfig(
    entrypoint=("/bin/ep",), cmd=("default",), env=(("PATH", "/bin"), ("A", "img")), user="1000:50"
)


def _pod(**container: Any) -> dict[str, Any]:
    c = {"name": "c", "image": "demo/x:1", **container}
    return {"metadata": {"name": "p", "namespace": "n", "uid": "u"}, "spec": {"containers": [c]}}


def _describe(**container: Any) -> Any:
    plan = podspec.plan(_pod(**container), "depot:5000")
    image = Image("x", Digest("sha256:" + "cd" * 32), Path("/x"), IMG)
    return podspec.description(plan, {ContainerName("c"): image}).containers[0]


@pytest.mark.parametrize(
    ("container", "argv"),
    [
        ({}, ("/bin/ep", "default")),
        ({"args": ["x"]}, ("/bin/ep", "x")),
        ({"command": ["sh"]}, ("sh",)),
        ({"command": ["sh"], "args": ["-c", "true"]}, ("sh", "-c", "true")),
    ],
)
def test_command_and_args_combine_with_the_image_like_kubernetes(
    container: dict[str, Any], argv: tuple[str, ...]
) -> None:
    assert _describe(**container).args == argv


def test_env_user_workdir_and_serial() -> None:
    c = _describe(env=[{"name": "A", "value": "pod"}], workingDir="/srv")
    assert dict(c.env) == {"PATH": "/bin", "A": "pod"}
    assert c.user == (1000, 50)
    assert c.working_dir == "/srv"
    assert c.image == "img-" + "cd" * 8
    assert _describe(securityContext={"runAsUser": 7}).user == (7, 7)


def test_admission_counts_requests_and_the_vm_size() -> None:
    plan = podspec.plan(_pod(resources={"requests": {"cpu": "500m", "memory": "64Mi"}}), "r")
    podspec.admit(plan, 500, 1024)
    with pytest.raises(podspec.PodRejected) as cpu:
        podspec.admit(plan, 499, 1024)
    assert cpu.value.reason == "OutOfcpu"
    with pytest.raises(podspec.PodRejected) as mem:
        podspec.admit(plan, 500, 90)  # 64 Mi requested, but the VM needs 64 + 32 for kernel and pod-init
    assert mem.value.reason == "OutOfmemory"


def test_bad_quantities_and_names_are_rejected_with_reasons() -> None:
    with pytest.raises(podspec.PodRejected) as bad:
        podspec.plan(_pod(resources={"limits": {"memory": "lots"}}), "r")
    assert bad.value.reason == "CreateContainerConfigError"
    with pytest.raises(podspec.PodRejected) as name:
        podspec.plan(_pod(image="UPPER/case"), "r")
    assert name.value.reason == "InvalidImageName"


class FakeIp:
    def __init__(self, existing: set[str]) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.existing = existing

    def __call__(
        self, argv: Sequence[str], *, timeout: float, check: bool = True, **_: Mapping[str, Any]
    ) -> proc.Result:
        args = tuple(argv)
        self.calls.append(args)
        code = 0
        if args[1:3] == ("link", "show"):
            code = 0 if args[-1] in self.existing else 1
        return proc.Result(args, code, "", "")


def test_network_setup_leases_and_release(tmp_path: Path) -> None:
    ip = FakeIp(existing=set())
    net = PodNetwork("nlpods", "10.244.1.0/29", tmp_path, run=ip)
    net.setup({"10.244.2.0/24": "198.18.100.12", "10.244.1.0/29": "198.18.100.11"})
    assert ("ip", "addr", "replace", "10.244.1.1/29", "dev", "nlpods") in ip.calls
    assert ("ip", "route", "replace", "10.244.2.0/24", "via", "198.18.100.12") in ip.calls
    assert not any("10.244.1.0/29" in c and "route" in c for c in ip.calls), "no route to our own subnet"

    a = net.allocate("uid-a")
    assert (a.ip, a.gateway, a.prefix) == ("10.244.1.2", "10.244.1.1", 29)
    assert a.cmdline() == ("nestlab.ip=10.244.1.2/29", "nestlab.gw=10.244.1.1")
    assert net.allocate("uid-a").ip == "10.244.1.2", "the same pod keeps its address"
    others = [net.allocate(f"uid-{i}").ip for i in range(4)]
    assert others == ["10.244.1.3", "10.244.1.4", "10.244.1.5", "10.244.1.6"]
    with pytest.raises(PodNetworkError, match="no free address"):
        net.allocate("uid-full")

    ip.existing.add(tap_name("uid-a"))
    net.release("uid-a")
    assert ("ip", "link", "del", tap_name("uid-a")) in ip.calls
    assert net.allocate("uid-new").ip == "10.244.1.2"
    assert len(tap_name("0123456789abcdef-long-uid")) <= 15
