"""runAsNonRoot: the kubelet's verdicts and words for each spec / image-user combination."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.agent import security

WHERE = '(pod: "web_demo(u-1)", container: c)'


def pod(pod_context: dict[str, Any] | None = None, **container_context: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "c", "image": "nestlab/web:1"}
    if container_context:
        container["securityContext"] = container_context
    spec: dict[str, Any] = {"containers": [container]}
    if pod_context is not None:
        spec["securityContext"] = pod_context
    return {"metadata": {"name": "web", "namespace": "demo", "uid": "u-1"}, "spec": spec}


def verdict(p: dict[str, Any], user: str) -> str | None:
    return security.verify_run_as_non_root(p, p["spec"]["containers"][0], user)


@pytest.mark.parametrize(
    ("p", "user", "expected"),
    [
        (pod(), "", None),  # not asked: root is fine
        (pod(runAsNonRoot=False), "", None),
        (pod(runAsNonRoot=True), "", f"container has runAsNonRoot and image will run as root {WHERE}"),
        (
            pod({"runAsNonRoot": True}),
            "0:0",
            f"container has runAsNonRoot and image will run as root {WHERE}",
        ),
        (pod(runAsNonRoot=True), "1000", None),
        (pod(runAsNonRoot=True), "1000:1000", None),
        (
            pod(runAsNonRoot=True),
            "nginx",
            f"container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is "
            f"non-root {WHERE}",
        ),
        (pod(runAsNonRoot=True, runAsUser=1000), "nginx", None),  # the spec's uid decides
        (
            pod({"runAsUser": 0}, runAsNonRoot=True),
            "1000",
            f"container's runAsUser breaks non-root policy {WHERE}",
        ),
        (pod({"runAsNonRoot": True}, runAsNonRoot=False), "", None),  # the container's word wins
        (pod({"runAsNonRoot": True}, runAsUser=5), "", None),
        (
            pod(runAsNonRoot=True),
            "4294967296",
            "container has runAsNonRoot and image has an invalid user id (4294967296). (Must be 1-(2147483647)): "
            f"must be between 0 and 2147483647, inclusive {WHERE}",
        ),
    ],
)
def test_verdicts_in_the_kubelets_words(p: dict[str, Any], user: str, expected: str | None) -> None:
    assert verdict(p, user) == expected


def test_the_first_refused_container_is_named_init_containers_first() -> None:
    p = pod({"runAsNonRoot": True})
    p["spec"]["initContainers"] = [{"name": "setup", "image": "nestlab/job:ok"}]
    assert security.non_root_problem(p, {"setup": "1", "c": "1"}) is None
    found = security.non_root_problem(p, {"setup": "root", "c": ""})
    assert found is not None
    assert found[0] == "setup"
    assert "non-numeric user (root)" in found[1]
    assert security.REASON == "CreateContainerConfigError"
