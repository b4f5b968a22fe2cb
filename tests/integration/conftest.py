"""Integration tests that boot pod VMs run after the others, to give the pod kernel time to build.

On a fresh machine the pod kernel compiles for minutes; ``make test`` starts that build at once, in
the background (nestlab.prebuild). The integration tests that need no kernel (the API server's,
the datastore's, DNS, libvirt...) keep one core busy meanwhile, so those that boot pods are
moved behind them, a whole module at a time (its module-scoped fixtures stay set up once). Every
other test keeps its place.
"""

from __future__ import annotations

from pathlib import Path

import pytest

KERNEL_FIXTURES = frozenset({"pod_boot", "boot_files"})
"""The fixtures that build (or wait for) the pod kernel: tests/integration/{agent,runtime}/conftest.py."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Within the integration tests' places in ``items``: modules without a pod VM first."""
    here = Path(__file__).parent
    places = [index for index, item in enumerate(items) if item.path.is_relative_to(here)]
    ours = [items[index] for index in places]
    booting = {item.path for item in ours if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ()))}
    ordered = sorted(ours, key=lambda item: item.path in booting)  # stable: each group keeps its order
    for index, item in zip(places, ordered, strict=True):
        items[index] = item
