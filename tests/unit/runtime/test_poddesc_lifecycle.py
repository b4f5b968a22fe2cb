"""The probe, hook, init and deadline directives of the pod description (pod-init's probes.h)."""

from __future__ import annotations

import pytest

from nestlab.runtime import poddesc
from nestlab.runtime.poddesc import Action, Container, ContainerName, DiskSerial, PodDescription, Probe

IMG = DiskSerial("img-0")


def lines_of(*containers: Container, deadline_s: int = 0) -> list[str]:
    return poddesc.encode(PodDescription("p", containers, deadline_s=deadline_s)).splitlines()


def test_probes_hooks_and_init_are_container_lines_before_end() -> None:
    web = Container(
        ContainerName("web"),
        IMG,
        ("sh",),
        probes=(
            Probe(
                "liveness", Action("exec", ("sh", "-c", "test -f /tmp/ok")), period_s=2, failure_threshold=1
            ),
            Probe("readiness", Action("http", port=80, path="/a b", headers=(("X-Token", "t 1"),))),
            Probe("startup", Action("tcp", host="10.1.2.3", port=5432), initial_delay_s=3),
        ),
        post_start=Action("exec", ("touch", "")),
        pre_stop=Action("http", port=8080, path="/quit"),
    )
    prep = Container(ContainerName("prep"), IMG, ("true",), init=True)
    lines = lines_of(prep, web, deadline_s=30)
    assert "deadline 30" in lines
    assert lines[lines.index("container prep") : lines.index("container prep") + 7][-2:] == ["init 1", "end"]
    start = lines.index("container web")
    assert lines[start + 5 : start + 11] == [
        "probe liveness 0 2 1 1 1 exec sh -c test%20-f%20/tmp/ok",
        "probe readiness 0 10 1 1 3 http - 80 /a%20b X-Token:%20t%201",
        "probe startup 3 10 1 1 3 tcp 10.1.2.3 5432",
        "hook poststart exec touch %00",  # an empty word still takes its place
        "hook prestop http - 8080 /quit",
        "end",
    ]


def test_no_deadline_and_no_probes_add_no_lines() -> None:
    lines = lines_of(Container(ContainerName("a"), IMG, ("true",)))
    assert not any(line.split()[0] in ("deadline", "init", "probe", "hook") for line in lines)


@pytest.mark.parametrize(
    ("container", "words"),
    [
        (
            Container(
                ContainerName("a"), IMG, ("x",), init=True, probes=(Probe("liveness", Action("tcp", port=1)),)
            ),
            "no hooks\\) on init containers",
        ),
        (
            Container(
                ContainerName("a"), IMG, ("x",), probes=(Probe("readiness", Action("tcp", port=1)),) * 2
            ),
            "one probe of each kind",
        ),
        (
            Container(
                ContainerName("a"),
                IMG,
                ("x",),
                probes=(Probe("liveness", Action("tcp", port=1), success_threshold=2),),
            ),
            "successThreshold 1 unless readiness",
        ),
        (
            Container(
                ContainerName("a"), IMG, ("x",), probes=(Probe("startup", Action("tcp", port=1), period_s=0),)
            ),
            "period/timeout/thresholds >= 1",
        ),
        (Container(ContainerName("a"), IMG, ("x",), post_start=Action("tcp", port=0)), "postStart: port 0"),
        (
            Container(ContainerName("a"), IMG, ("x",), pre_stop=Action("http", host="db", port=80)),
            "must be an IPv4",
        ),
        (
            Container(ContainerName("a"), IMG, ("x",), pre_stop=Action("exec", ())),
            "preStop: exec needs a command",
        ),
        (
            Container(
                ContainerName("a"), IMG, ("x",), pre_stop=Action("http", port=80, headers=(("a b", "c"),))
            ),
            "is not an HTTP header name",
        ),
    ],
)
def test_what_pod_init_cannot_run_is_refused(container: Container, words: str) -> None:
    with pytest.raises(poddesc.PodDescriptionError, match=words):
        poddesc.encode(PodDescription("p", (container,)))


def test_a_negative_deadline_is_refused() -> None:
    with pytest.raises(poddesc.PodDescriptionError, match="deadline must not be negative"):
        lines_of(Container(ContainerName("a"), IMG, ("x",)), deadline_s=-1)
