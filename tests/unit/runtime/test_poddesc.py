"""The pod description pod-init reads: encoding, quoting, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nestlab.runtime import poddesc
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription, PodDescriptionError


def web(**kwargs: object) -> Container:
    fields: dict[str, object] = {
        "name": ContainerName("web"),
        "image": DiskSerial("img-0"),
        "args": ("httpd", "-f", "-p", "80"),
    }
    fields.update(kwargs)
    return Container(**fields)  # type: ignore[arg-type]


def test_encode_lays_out_every_field_in_order() -> None:
    desc = PodDescription(
        "demo",
        (web(env=(("GREETING", "hello world"),), working_dir="/srv", user=(1000, 100)),),
        restart_policy="OnFailure",
        grace_s=3,
        backoff_ms=200,
    )
    assert poddesc.encode(desc).splitlines() == [
        "nestlab-pod 1",
        "name demo",
        "restart OnFailure",
        "grace 3",
        "backoff 200",
        "container web",
        "image img-0",
        "workdir /srv",
        "user 1000:100",
        "arg httpd",
        "arg -f",
        "arg -p",
        "arg 80",
        "env GREETING=hello%20world",
        "end",
    ]


def test_disk_is_whole_sectors_of_text_then_nul() -> None:
    data = poddesc.disk_bytes(PodDescription("demo", (web(),)))
    assert len(data) % 512 == 0
    assert data.rstrip(b"\0").decode() == poddesc.encode(PodDescription("demo", (web(),)))


@given(st.text(min_size=0, max_size=200))
def test_quote_round_trips_and_leaves_no_separator(value: str) -> None:
    quoted = poddesc.quote(value)
    assert poddesc.unquote(quoted) == value
    assert not set(quoted) & {" ", "\n", "\r", "\t", "\0"}


@pytest.mark.parametrize(
    ("desc", "message"),
    [
        (PodDescription("Demo", (web(),)), "pod name 'Demo' must be a DNS label"),
        (PodDescription("demo", ()), "needs 1 to 16 containers"),
        (PodDescription("demo", (web(), web())), r"containers\[1\].name 'web' must be a unique DNS label"),
        (PodDescription("demo", (web(image=DiskSerial("nestlab-pod")),)), r"containers\[0\].image"),
        (PodDescription("demo", (web(image=DiskSerial("x" * 21)),)), r"containers\[0\].image"),
        (PodDescription("demo", (web(args=()),)), "needs 1 to 64 args"),
        (PodDescription("demo", (web(env=(("BAD NAME", "1"),)),)), "'BAD NAME' is not a variable name"),
        (PodDescription("demo", (web(working_dir="srv"),)), "workingDir 'srv' must be absolute"),
        (PodDescription("demo", (web(user=(-1, 0)),)), "must not be negative"),
    ],
)
def test_validation_names_the_field(desc: PodDescription, message: str) -> None:
    with pytest.raises(PodDescriptionError, match=message):
        poddesc.encode(desc)


def test_image_serials_are_distinct_in_container_order() -> None:
    desc = PodDescription(
        "demo",
        (
            web(image=DiskSerial("b")),
            web(name=ContainerName("c2"), image=DiskSerial("a")),
            web(name=ContainerName("c3")),
        ),
    )
    assert desc.image_serials() == ["b", "a", "img-0"]
