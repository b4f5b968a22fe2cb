"""Where nestlab keeps things on the outer machine: one state directory per lab, one cache.

``NESTLAB_HOME`` moves everything (tests use a temporary one); otherwise root uses /var/lib/nestlab
and other users ~/.local/share/nestlab. Image and kernel caches live outside lab directories so
``nestlab down`` keeps them.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The root of everything nestlab writes."""
    configured = os.environ.get("NESTLAB_HOME")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/lib/nestlab")
    return Path.home() / ".local" / "share" / "nestlab"


def lab_dir(name: str) -> Path:
    """The state directory of lab ``name``."""
    return home() / "labs" / name


def cache_dir() -> Path:
    """Content-addressed caches (node images, kernels, pod images) shared by all labs."""
    return home() / "cache"


def repo_root() -> Path:
    """The checkout nestlab runs from (roles, playbooks, stacks and recipes live there)."""
    return Path(__file__).resolve().parent.parent
