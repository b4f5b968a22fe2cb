"""Fuzz the query-parameter parsers: any text is a value or a 400/422 naming the parameter."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from nestlab.api import query, reads
from nestlab.api.selectors import compile_selector
from nestlab.api.status import ApiError
from tests.unit.api.fuzz_settings import fuzz

VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        ["9" * 19, "9" * 20, "-9223372036854775808", "+1", "1_000", " 1", "\u0661", "0x10", "1e3"]
    ),
)
NAMES = ("limit", "timeoutSeconds", "resourceVersion", "gracePeriodSeconds", "fieldManager")


def refused_naming(call: Callable[[], object], name: str) -> None:
    """``call()`` succeeds, or refuses with a 400/422 naming the parameter."""
    refusal: ApiError | None = None
    try:
        call()
    except ApiError as exc:
        refusal = exc
    if refusal is not None:
        assert refusal.code in (400, 422), refusal.message
        assert name in refusal.message, refusal.message


@fuzz(300)
@given(st.sampled_from(NAMES), VALUES)
def test_numbers_and_names(name: str, value: str) -> None:
    params = {name: value}
    refused_naming(lambda: query.integer(params, name, 0, minimum=0), name)
    refused_naming(lambda: query.grace_period({"gracePeriodSeconds": value}), "gracePeriodSeconds")
    refused_naming(lambda: query.resource_version({"resourceVersion": value}), "resource version")
    refused_naming(lambda: query.field_manager({"fieldManager": value}, "CreateOptions"), "fieldManager")
    refused_naming(lambda: reads.watch_seconds({"timeoutSeconds": value}, 1800), "timeoutSeconds")


@fuzz(300)
@given(VALUES, VALUES, st.sampled_from(["pods", "events", "nodes", "secrets", "configmaps"]))
def test_selectors(labels: str, fields: str, plural: str) -> None:
    refusal: ApiError | None = None
    try:
        compile_selector(labels, fields, plural)({"metadata": {"name": "x", "labels": {"a": "b"}}})
    except ApiError as exc:
        refusal = exc
    assert refusal is None or refusal.code == 400, refusal.message


def test_accepted_values() -> None:
    assert query.integer({"limit": "500"}, "limit", 0, minimum=0) == 500
    assert query.integer({}, "limit", 7) == 7
    assert query.grace_period({"gracePeriodSeconds": "30"}) == 30
    assert query.resource_version({"resourceVersion": "12"}) == "12"
    refused_naming(lambda: query.integer({"limit": "9" * 30}, "limit", 0), "limit")
    refused_naming(lambda: query.integer({"limit": "\u0661\u0662"}, "limit", 0), "limit")
