"""Build spec YAML for tests from a ``spec:`` mapping, so each case states only what it changes."""

from __future__ import annotations

from typing import Any

import yaml


def spec_yaml(section: dict[str, Any] | None = None, **top: Any) -> str:
    """A full Lab document with ``section`` as its spec; ``top`` overrides top-level keys."""
    document: dict[str, Any] = {
        "apiVersion": "nestlab.dev/v1alpha1",
        "kind": "Lab",
        "metadata": {"name": "t"},
        "spec": section or {},
    }
    document.update(top)
    return yaml.safe_dump(document)
