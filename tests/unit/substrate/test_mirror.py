"""Choosing the Debian mirror and failing clearly when it cannot be reached."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from nestlab.substrate.local import mirror
from nestlab.substrate.local.errors import ImageError

SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_mirror_from_deb822_sources() -> None:
    assert mirror.mirror_from_sources(SOURCES) == "http://mirror.example/debian"
    assert mirror.mirror_from_sources(SOURCES, "trixie") is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    sources = tmp_path / "debian.sources"
    sources.write_text(SOURCES)
    monkeypatch.delenv(mirror.MIRROR_ENV, raising=False)
    assert mirror.default_mirror(sources) == "http://mirror.example/debian"
    assert mirror.default_mirror(tmp_path / "absent") == mirror.FALLBACK_MIRROR
    monkeypatch.setenv(mirror.MIRROR_ENV, "http://other.example/debian/")
    assert mirror.default_mirror(sources) == "http://other.example/debian"


def test_unreachable_mirror_is_a_clear_error() -> None:
    with socket.socket() as sock:  # a loopback port that is certainly closed: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(ImageError, match=r"cannot reach the Debian mirror .*NESTLAB_DEBIAN_MIRROR"):
            mirror.check_mirror(f"http://127.0.0.1:{port}/debian", "bookworm", timeout=5)


def test_not_a_url() -> None:
    with pytest.raises(ImageError, match="not an http"):
        mirror.check_mirror("/srv/mirror", "bookworm")
