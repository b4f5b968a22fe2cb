"""Fuzz the request decoders: whatever the bytes, a value the server can store again, or a 4xx.

Bytes are built from JSON/YAML-shaped tokens (brackets, escapes, huge numbers, NaN, surrogates,
anchors, tags, duplicate keys) as well as drawn at random, so the decoders meet both plausible
and hostile bodies. A decoded value must survive what the server does next with it: encoding as
strict JSON (no NaN), as UTF-8, with string keys, and recursion bounded by MAX_DEPTH.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from nestlab.api import decode, handlers, protobuf
from nestlab.api.status import ApiError
from tests.unit.api.fuzz_settings import fuzz
from tests.unit.api.test_wire import BINDING, NAMESPACE, QUOTA

JSON_TOKENS = st.sampled_from(
    ["{", "}", "[", "]", ":", ",", " ", '"a"', '"b"', '"metadata"', '"name"', "1", "-0", "0.5", "1e400",
     "-1e400", "9" * 25, "NaN", "Infinity", "-Infinity", "true", "null", '"\\ud800"', '"\\udc00x"',
     '"\\u0000"', '"\\"', '"\\x"', "\ufeff", "\x00", '"é"', "\n", "[" * 150, "{\"a\":" * 120]
)  # fmt: skip
YAML_TOKENS = st.sampled_from(
    ["a: ", "b: ", "- ", "\n", "  ", "&x ", "*x", "&y [*x, *x, *x]", "[", "]", "{", "}", ", ", "1",
     ".nan", ".inf", "2001-12-14", "!!binary aGk=", "!!set {a}", "!!python/name:os.system", "? [a]\n: 1",
     "<<: *x", "---\n", "9" * 30, "0x7fffffffffffffffff", '"\\ud800"', "\x00", "\t", "'", '"', "yes",
     "~", "|\n  text", "[" * 120, "!!omap [a: 1]", "!!timestamp 2001-12-14", "1: x"]
)  # fmt: skip


def _joined(tokens: st.SearchStrategy[str]) -> st.SearchStrategy[bytes]:
    return st.lists(tokens, max_size=40).map(lambda parts: "".join(parts).encode("utf-8", "surrogatepass"))


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def storable(value: Any) -> None:
    """What the server does with a decoded body must not fail: strict JSON, UTF-8, bounded depth."""
    assert _depth(value) <= decode.MAX_DEPTH
    json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")


def only_4xx(call: Any, *args: Any) -> Any:
    """``call(*args)``, or None when it refused with a one-line 4xx (anything else fails)."""
    refusal: ApiError | None = None
    try:
        return call(*args)
    except ApiError as exc:
        refusal = exc
    assert 400 <= refusal.code < 500, refusal.message
    assert refusal.message
    assert "\n" not in refusal.message
    return None


@fuzz(400)
@given(st.one_of(_joined(JSON_TOKENS), st.binary(max_size=200)))
@example(b"[" * 100_000)
@example(b'{"a": 1, "a": 2}')
def test_json_bodies(raw: bytes) -> None:
    decoded = only_4xx(decode.decode_json, raw)
    if decoded is not None:
        storable(decoded.value)
        assert all(d.startswith("duplicate field ") for d in decoded.duplicates)


@fuzz(300)
@given(st.one_of(_joined(YAML_TOKENS), st.binary(max_size=200)))
@example(b"a: &a [1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b]\n")
@example(b"&a [*a]")
def test_yaml_bodies(raw: bytes) -> None:
    decoded = only_4xx(decode.decode_yaml, raw)
    if decoded is not None:
        storable(decoded.value)


@fuzz(300)
@given(
    st.sampled_from([NAMESPACE, QUOTA, BINDING]),
    st.lists(st.tuples(st.integers(0, 400), st.binary(min_size=0, max_size=4)), max_size=4),
)
def test_protobuf_bodies(recorded: bytes, edits: list[tuple[int, bytes]]) -> None:
    """Recorded kubectl bodies, bytes replaced here and there: decoded, 400 or 415."""
    body = recorded
    for offset, replacement in edits:
        at = min(offset, len(body))
        body = body[:at] + replacement + body[at + len(replacement) :]
    decoded = only_4xx(handlers._decode, protobuf.MEDIA_TYPE, body)
    if decoded is not None:
        storable(decoded.value)


@fuzz(200)
@given(st.binary(max_size=300))
def test_protobuf_garbage(tail: bytes) -> None:
    only_4xx(handlers._decode, protobuf.MEDIA_TYPE, protobuf.MAGIC + tail)


@fuzz(200)
@given(
    st.sampled_from(["application/json", "application/yaml", "application/apply-patch+yaml",
                     "application/merge-patch+json", "text/html", "application/xml", "", "image/png"]),
    st.binary(max_size=60),
)  # fmt: skip
def test_any_content_type(kind: str, raw: bytes) -> None:
    decoded = only_4xx(handlers._decode, kind, raw)
    if decoded is not None:
        storable(decoded.value)


def test_known_refusals() -> None:
    """The cases the issue measured, and upstream's wording where it has one."""
    with_depth = only_4xx(decode.decode_json, b"[" * 100_000 + b"]" * 100_000)
    assert with_depth is None
    assert decode.too_large().status()["message"] == "Request entity too large: limit is 3145728"
    assert decode.decode_json(b'{"metadata": {"name": "a", "name": "b"}}').duplicates == (
        'duplicate field "metadata.name"',
    )
    assert decode.decode_yaml(b"a: 1\na: 2\n").duplicates == ('line 2: key "a" already set in map',)
    assert decode.decode_yaml(b"when: 2001-12-14\n").value == {"when": "2001-12-14"}


def test_duplicates_are_deduplicated_and_capped() -> None:
    """A key given fifty times is one finding; thousands of distinct ones are not thousands of
    Warning headers."""
    repeated = "{" + ",".join('"a": 1' for _ in range(50)) + "}"
    assert decode.decode_json(repeated.encode()).duplicates == ('duplicate field "a"',)
    many = "{" + ",".join(f'"k{i}": {{"x": 1, "x": 2}}' for i in range(40)) + "}"
    found = decode.decode_json(many.encode()).duplicates
    assert len(found) == decode.MAX_DUPLICATES + 1
    assert found[-1] == "and 30 more duplicate fields"
