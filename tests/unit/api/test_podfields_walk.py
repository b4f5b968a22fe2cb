"""The pod-field check walks only the rows that can refuse something, and finds what the full walk
of every row found (the reference below is the check as it was before it skipped rows)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from nestlab.api.kinds import podfields, podvolumes
from nestlab.api.status import Cause

Obj = dict[str, Any]


def _reference_values(node: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        yield where, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    value = node.get(name)
    if not head.endswith("[]"):
        yield from _reference_values(value, rest, f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _reference_values(item, rest, f"{where}.{name}[{index}]")


def reference_check(spec: Any, path: str = "spec") -> list[Cause]:
    """Every row, every path, as the check was written before it was made fast."""
    if not isinstance(spec, dict):
        return []
    by_path = {row.path: row for row in podfields.ROWS}
    lists: tuple[str, ...] = ("containers",)
    if not podfields._refused(by_path["initContainers"], spec.get("initContainers")):
        lists += ("initContainers",)
    causes: list[Cause] = []
    for row in podfields.ROWS:
        if row.path == podfields.EMPTY_DIR_SIZE:
            continue  # a rule of its own (the volume's medium decides), below
        parts = row.path.split(".")
        targets = [[parts[0].replace("containers", n, 1), *parts[1:]] for n in lists]
        for target in targets if row.path.startswith("containers[]") else [parts]:
            for where, value in _reference_values(spec, target, path):
                if row.path == "volumes[].hostPath" and not podfields._is_unset(value):
                    causes += podvolumes.host_path_source(value, where)
                elif row.path.endswith(("resources.limits", "resources.requests")) and isinstance(
                    value, dict
                ):
                    causes += [
                        Cause(f"{where}[{name}]", f"Forbidden: {podfields.NOT_YET_MSG}", podfields.FORBIDDEN)
                        for name in value
                        if name not in podfields.RESOURCE_NAMES
                    ]
                elif podfields._refused(row, value):
                    causes.append(Cause(where, podfields._refusal(row, value), podfields.FORBIDDEN))
    causes += podvolumes.host_path_mounts(spec, path, lists)
    causes += podfields._disk_size_limits(spec, path)
    unique = {cause.field: cause for cause in causes + podfields._run_as_group(spec, path, lists)}
    return list(unique.values())


BASE: Obj = {"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "10m"}}}]}


def _with(**fields: Any) -> Obj:
    spec = copy.deepcopy(BASE)
    spec.update(fields)
    return spec


SPECS: list[Obj] = [
    BASE,
    {},
    {"containers": "not a list"},
    {"containers": [None, 3, "x"]},
    _with(hostNetwork=True, hostPID=False, hostIPC=None, priority=5, overhead={"cpu": "1"}),
    _with(ephemeralContainers=[{"name": "e"}], imagePullSecrets=[{"name": "s"}], os={"name": "windows"}),
    _with(securityContext={"runAsGroup": 5, "sysctls": [{"name": "a", "value": "b"}]}),
    _with(
        initContainers=[
            {"name": "i", "image": "x", "securityContext": {"privileged": True}, "lifecycle": {"preStop": {}}}
        ]
    ),
    _with(initContainers=[]),
    _with(
        containers=[
            {
                "name": "a",
                "image": "x",
                "resources": {
                    "limits": {"nvidia.com/gpu": "1", "cpu": "1"},
                    "requests": {"hugepages-2Mi": "1"},
                },
                "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN", "CHOWN"]}},
                "ports": [{"containerPort": 80, "hostPort": 80}],
                "volumeDevices": [{"name": "v", "devicePath": "/dev/x"}],
                "terminationMessagePolicy": "FallbackToLogsOnError",
            },
            {"name": "b", "image": "y", "securityContext": {"runAsGroup": 7}, "resizePolicy": []},
        ]
    ),
    _with(
        volumes=[
            {"name": "h", "hostPath": {"path": "/etc"}},
            {"name": "l", "hostPath": {"path": "/var/log/pods"}},
            {"name": "g", "gitRepo": {"repository": "x"}},
            {"name": "e", "emptyDir": {}},
            {"name": "d", "emptyDir": {"sizeLimit": "1Gi"}},
            {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
        ],
        containers=[{"name": "c", "image": "x", "volumeMounts": [{"name": "l", "mountPath": "/l"}]}],
    ),
]


@pytest.mark.parametrize("spec", SPECS, ids=range(len(SPECS)))
def test_the_fast_check_finds_what_every_row_finds(spec: Obj) -> None:
    assert podfields.check(copy.deepcopy(spec)) == reference_check(copy.deepcopy(spec))
    assert podfields.check(copy.deepcopy(spec), "spec.template.spec") == reference_check(
        copy.deepcopy(spec), "spec.template.spec"
    )


def test_the_fixtures_exercise_refusals() -> None:
    """The comparison means something only if the specs above are refused for many reasons."""
    fields = {cause.field for spec in SPECS for cause in reference_check(copy.deepcopy(spec))}
    assert len(fields) >= 15, fields


def test_only_rows_that_can_refuse_are_walked() -> None:
    walked = {row.path for row, *_ in podfields._WALKS}
    assert "containers[].image" not in walked  # honoured: never a cause
    assert "hostNetwork" in walked
    assert "volumes[].hostPath" in walked
    assert "containers[].resources.limits" in walked


def test_size_limit_is_its_own_rule() -> None:
    walked = {row.path for row, *_ in podfields._WALKS}
    assert podfields.EMPTY_DIR_SIZE not in walked
    assert [c.field for c in podfields.check(SPECS[-1])].count("spec.volumes[4].emptyDir.sizeLimit") == 1
