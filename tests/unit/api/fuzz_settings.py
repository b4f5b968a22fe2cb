"""How long the fuzz tests run: short in the suite, long on demand (``NESTLAB_FUZZ=long``).

The suite's profile keeps all fuzz tests together well under a minute on the shared two-core build
machine; ``NESTLAB_FUZZ=long`` multiplies every test's examples by 50 for a run before trusting
a change to a decoder (``NESTLAB_FUZZ=long .venv/bin/pytest tests/unit/api/test_fuzz_*.py
tests/unit/spec/test_fuzz_*.py``). No deadline: the machine is shared, and a slow example is not
a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

LONG = os.environ.get("NESTLAB_FUZZ", "") == "long"
_FACTOR = 50 if LONG else 1


def fuzz(examples: int) -> settings:
    """Settings for a fuzz test that runs ``examples`` examples in the suite."""
    return settings(
        max_examples=examples * _FACTOR,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
