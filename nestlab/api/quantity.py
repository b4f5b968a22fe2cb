"""Kubernetes resource quantities (``250m``, ``0.5``, ``128Mi``, ``1G``, ``1e3``) as exact decimals.

Quota admission adds and compares requests, so quantities are parsed exactly (Decimal), never as
floats, and printed back in the canonical short form the upstream API uses.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]))?$")


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message quotes the accepted form."""


def parse(text: str | int | float) -> Decimal:
    """The value of a quantity; raises QuantityError for anything else."""
    raw = str(text).strip()
    match = _QUANTITY.match(raw)
    if match is None:
        raise QuantityError(
            "quantities must match the regular expression "
            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (got {raw!r})"
        )
    number, exponent, suffix = match.groups()
    try:
        value = Decimal(number + (exponent or ""))
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise QuantityError(f"{raw!r} is not a number") from exc
    return value * _SUFFIXES[suffix or ""]


def format_cpu(value: Decimal) -> str:
    """CPU in the short form: whole cores as ``2``, otherwise millicores ``250m``."""
    if value == value.to_integral_value():
        return str(int(value))
    return f"{int((value * 1000).to_integral_value())}m"


def format_bytes(value: Decimal) -> str:
    """Memory in the largest binary unit that divides it exactly (``128Mi``), else plain bytes."""
    whole = int(value)
    for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
        unit = int(_SUFFIXES[suffix])
        if whole and whole % unit == 0:
            return f"{whole // unit}{suffix}"
    return str(whole)


def format_for(resource: str, value: Decimal) -> str:
    """Format a quota or request value according to what ``resource`` counts."""
    name = resource.removeprefix("requests.").removeprefix("limits.")
    if name == "cpu":
        return format_cpu(value)
    if name in ("memory", "ephemeral-storage", "storage"):
        return format_bytes(value)
    return str(int(value)) if value == value.to_integral_value() else str(value)
