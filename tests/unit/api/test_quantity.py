"""Quantities parse exactly and print in the upstream short forms."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nestlab.api import quantity


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100m", Decimal("0.1")),
        ("0.5", Decimal("0.5")),
        ("2", Decimal(2)),
        ("128Mi", Decimal(128 * 2**20)),
        ("1G", Decimal(10**9)),
        ("1e3", Decimal(1000)),
        (".5", Decimal("0.5")),
        (3, Decimal(3)),
    ],
)
def test_parse(text: str, value: Decimal) -> None:
    assert quantity.parse(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "12Q", "Mi", "1 Gi"])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(quantity.QuantityError, match="regular expression"):
        quantity.parse(text)


def test_format() -> None:
    assert quantity.format_cpu(Decimal("0.25")) == "250m"
    assert quantity.format_cpu(Decimal(2)) == "2"
    assert quantity.format_bytes(Decimal(64 * 2**20)) == "64Mi"
    assert quantity.format_bytes(Decimal(1000)) == "1000"
    assert quantity.format_for("requests.memory", Decimal(2**30)) == "1Gi"
    assert quantity.format_for("pods", Decimal(3)) == "3"
