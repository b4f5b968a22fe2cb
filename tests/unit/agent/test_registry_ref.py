"""Image reference parsing: default registry, tags, digests, and names the kubelet would refuse."""

from __future__ import annotations

import pytest

from nestlab.agent.registry import ImageRef, InvalidImageNameError, parse_ref

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web", ImageRef("depot:5000", "library/web", "latest")),
        ("nginx:1.25", ImageRef("depot:5000", "library/nginx", "1.25")),
        ("docker.io/library/nginx:1.25", ImageRef("depot:5000", "library/nginx", "1.25")),
        ("docker.io/bitnami/redis", ImageRef("depot:5000", "bitnami/redis", "latest")),
        (f"busybox@{DIGEST}", ImageRef("depot:5000", "library/busybox", DIGEST)),
        ("demo/web:1.0", ImageRef("depot:5000", "demo/web", "1.0")),
        ("198.18.100.5:5000/demo/web:2", ImageRef("198.18.100.5:5000", "demo/web", "2")),
        ("localhost/web", ImageRef("localhost", "web", "latest")),
        (f"reg.lab/web@{DIGEST}", ImageRef("reg.lab", "web", DIGEST)),
    ],
)
def test_references_parse(text: str, expected: ImageRef) -> None:
    assert parse_ref(text, "depot:5000") == expected


def test_str_round_trips() -> None:
    assert str(parse_ref(f"r:1/a/b@{DIGEST}", "x")) == f"r:1/a/b@{DIGEST}"
    assert str(parse_ref("a/b", "r:1")) == "r:1/a/b:latest"


@pytest.mark.parametrize("text", ["Web", "web:", "web@sha256:123", "web:-bad", "", "a//b"])
def test_bad_references_are_invalid_image_names(text: str) -> None:
    with pytest.raises(InvalidImageNameError):
        parse_ref(text, "depot:5000")
