"""Which Debian mirror builds the node image, and a fast, clear check that it answers.

debootstrap's own error for an unreachable mirror is a line deep in its log; checking the
suite's Release file first turns that into one message naming the mirror and the override.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from nestlab.substrate.local.errors import ImageError

MIRROR_ENV = "NESTLAB_DEBIAN_MIRROR"
FALLBACK_MIRROR = "http://deb.debian.org/debian"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
CHECK_TIMEOUT_S = 15.0  # a reachable mirror answers a Release request within a second or two


def mirror_from_sources(text: str, suite: str = "bookworm") -> str | None:
    """The first URI of a deb822 stanza that carries ``suite`` (not -updates/-security)."""
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if suite in fields.get("suites", "").split() and "deb" in fields.get("types", "").split():
            uris = fields.get("uris", "").split()
            if uris:
                return uris[0].rstrip("/")
    return None


def default_mirror(sources: Path = SOURCES) -> str:
    """$NESTLAB_DEBIAN_MIRROR, else this machine's own bookworm mirror, else deb.debian.org."""
    configured = os.environ.get(MIRROR_ENV)
    if configured:
        return configured.rstrip("/")
    if sources.is_file():
        found = mirror_from_sources(sources.read_text(encoding="utf-8"))
        if found:
            return found
    return FALLBACK_MIRROR


def check_mirror(mirror: str, suite: str, timeout: float = CHECK_TIMEOUT_S) -> None:
    """Raise ImageError unless ``mirror`` serves dists/<suite>/Release."""
    if not mirror.startswith(("http://", "https://")):
        raise ImageError(f"Debian mirror {mirror!r} is not an http(s) URL; set {MIRROR_ENV} to one")
    url = f"{mirror}/dists/{suite}/Release"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # noqa: S310 - http(s) checked above
            head = answer.read(4096).decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        raise ImageError(
            f"cannot reach the Debian mirror {mirror} ({url}: {exc}); the node image is built from it. "
            f"Check the network or point {MIRROR_ENV} at a reachable bookworm mirror."
        ) from exc
    if f"Codename: {suite}" not in head and f"Suite: {suite}" not in head:
        raise ImageError(f"{url} is not a {suite} Release file; set {MIRROR_ENV} to a Debian mirror")
