"""Query parameters of resource requests, parsed strictly: a bad one is a 400 that names it.

Upstream decodes ``?limit=``, ``?timeoutSeconds=``, ``?gracePeriodSeconds=`` into int64 fields and
``?resourceVersion=`` into a uint64 revision, so ``limit=abc``, ``limit=1e3`` or a 30-digit number
is a 400 there, not a crash or a silent zero. Python's ``int()`` accepts more than Go's
``strconv.ParseInt`` (``" 5"``, ``"1_000"``, Arabic-Indic digits), so the check is a pattern first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from nestlab.api import status

_INTEGER = re.compile(r"[+-]?[0-9]{1,19}")
_INT64_MAX = 2**63 - 1
_GRACE_MAX = 10 * 365 * 24 * 3600
"""Ten years: a longer grace period is a typo, and a deletion timestamp beyond year 9999 would not
even be representable."""


def integer(query: Mapping[str, str], name: str, default: int, *, minimum: int | None = None) -> int:
    """``?name=`` as a 64-bit integer (``default`` when absent or empty)."""
    raw = query.get(name, "")
    if raw == "":
        return default
    if not _INTEGER.fullmatch(raw) or abs(int(raw)) > _INT64_MAX:
        raise status.bad_request(f"{name} must be an integer, got {raw[:64]!r}")
    value = int(raw)
    if minimum is not None and value < minimum:
        bound = "must not be negative" if minimum == 0 else f"must be >= {minimum}"
        raise status.bad_request(f"{name} {bound}")
    return value


def grace_period(query: Mapping[str, str]) -> int | None:
    """``?gracePeriodSeconds=``: None when absent; 400 unless 0 <= n <= ten years."""
    if "gracePeriodSeconds" not in query:
        return None
    seconds = integer(query, "gracePeriodSeconds", 0, minimum=0)
    if seconds > _GRACE_MAX:
        raise status.bad_request(
            f"gracePeriodSeconds must be at most {_GRACE_MAX} (ten years), got {seconds}"
        )
    return seconds


def resource_version(query: Mapping[str, str]) -> str:
    """``?resourceVersion=``: "" or a revision (the digits of a 64-bit number), else 400."""
    raw = query.get("resourceVersion", "")
    if raw and (not raw.isascii() or not raw.isdigit() or int(raw) > _INT64_MAX):
        raise status.bad_request(f"invalid resource version: {raw[:64]!r}")
    return raw


def field_manager(query: Mapping[str, str], options_kind: str) -> str:
    """``?fieldManager=``: at most 128 printable characters; else 422 as upstream's
    ValidateFieldManager (``CreateOptions.meta.k8s.io "" is invalid: fieldManager: Too long...``)."""
    name = query.get("fieldManager", "")
    problem = ""
    if len(name.encode()) > 128:  # upstream's limit
        problem = "Too long: may not be more than 128 bytes"
    elif not name.isprintable():
        problem = f"Invalid value: {name[:64]!r}: must be printable"
    if problem:
        raise status.invalid(options_kind, "meta.k8s.io", "", [status.Cause("fieldManager", problem)])
    return name


def check_grace_option(options: object) -> None:
    """DeleteOptions.gracePeriodSeconds from a body: the same ten-year bound as the query's."""
    if isinstance(options, dict):
        grace = options.get("gracePeriodSeconds")
        if isinstance(grace, int) and not isinstance(grace, bool) and grace > _GRACE_MAX:
            raise status.bad_request(
                f"DeleteOptions.gracePeriodSeconds must be at most {_GRACE_MAX} (ten years), got {grace}"
            )


__all__ = [
    "check_grace_option",
    "field_manager",
    "grace_period",
    "integer",
    "resource_version",
]
