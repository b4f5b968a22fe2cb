"""Graceful deletion deadlines: a second delete may only shorten one already running.

Upstream's ``BeforeDelete`` (k8s.io/apiserver rest/delete.go): a pod already Terminating with
``deletionGracePeriodSeconds: 30`` that is deleted again with ``--grace-period=1`` gets the
shorter period, and its ``deletionTimestamp`` moves earlier by the difference; a longer or
equal period changes nothing. Kept apart from the registry so the rule is testable alone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def shorten(meta: dict[str, Any], grace: int | None) -> bool:
    """Shorten the running graceful deletion in ``meta`` to ``grace`` seconds, in place.

    True when ``meta`` changed (it must be written); False when there is nothing to shorten: no
    period asked, no period running, or one already as short."""
    current = meta.get("deletionGracePeriodSeconds")
    if grace is None or not meta.get("deletionTimestamp") or not isinstance(current, int) or current == 0:
        return False
    if grace >= current:
        return False
    try:
        deadline = datetime.strptime(str(meta["deletionTimestamp"]), _FORMAT).replace(tzinfo=UTC)
    except ValueError:
        deadline = datetime.now(UTC) + timedelta(seconds=current)
    meta["deletionTimestamp"] = (deadline - timedelta(seconds=current - grace)).strftime(_FORMAT)
    meta["deletionGracePeriodSeconds"] = grace
    return True
