"""Fuzz the lab spec reader: any file is a Lab or a SpecError whose problems are one line each.

Three shapes of input: the shipped specs with a value swapped for a hostile one at a random
place (the mistakes a learner makes by hand, and worse), YAML-shaped token soup, and raw bytes
through ``load_spec`` (encodings). Nothing but :class:`~nestlab.spec.errors.SpecError` may escape,
and each of its issues must name a place (a field path or a line) and fit on one line.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from nestlab.spec import SpecError, load_spec, parse_spec
from tests.unit.api.fuzz_settings import fuzz

STACKS = Path(__file__).resolve().parents[3] / "stacks"
SPECS = [yaml.safe_load((STACKS / name).read_text()) for name in ("default.lab.yaml", "multi.lab.yaml")]
HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["4GiB", "0MiB", "9" * 30 + "GiB", "198.18.0.0/33", "198.18.0.1/24", "-3", "a\nb"]),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
TOKENS = st.sampled_from(
    ["apiVersion: nestlab.dev/v1alpha1\n", "kind: Lab\n", "spec:\n", "  hosts:\n", "    count: ", "3",
     "\n", "  ", "- ", "&a ", "*a", "[", "]", "{", "}", ": ", "count: 1\ncount: 2\n", "!!binary aGk=",
     "!!python/object:os.system {}", ".nan", "9" * 5000, "\t", "\x00", "\ufeff", "? [a]\n: 1\n",
     "[" * 2000, "metadata: {name: ", "'", '"', "---\n", "<<: *a\n", "é", "\x85", "\u2028"]
)  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    holder = document
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = value
    return document


def refused_or_read(call: Any, *args: Any) -> None:
    """``call(*args)`` reads a Lab or raises a SpecError of one-line problems; nothing else."""
    error: SpecError | None = None
    try:
        call(*args)
    except SpecError as exc:
        error = exc
    if error is None:
        return
    assert error.issues
    for issue in error.issues:
        line = str(issue)
        assert line, issue
        assert "\n" not in line, repr(line)
        assert "\r" not in line, repr(line)
        assert issue.path, line
    assert "Traceback" not in str(error)


@fuzz(300)
@given(st.sampled_from(range(len(SPECS))), st.data(), HOSTILE)
def test_one_value_swapped(which: int, data: st.DataObject, value: Any) -> None:
    document = copy.deepcopy(SPECS[which])
    path = data.draw(st.sampled_from(_paths(document)))
    text = yaml.safe_dump(_replace(document, path, value), allow_unicode=True)
    refused_or_read(parse_spec, text)


@fuzz(300)
@given(st.lists(TOKENS, max_size=30).map("".join))
@example("[" * 100_000)
@example("hosts:\n  count: " + "9" * 5000 + "\n")
@example("spec:\n  hosts:\n    memory: " + "9" * 5000 + "GiB\n")
def test_token_soup(text: str) -> None:
    refused_or_read(parse_spec, text)


@fuzz(150)
@given(st.binary(max_size=120))
@example("apiVersion: nestlab.dev/v1alpha1\nkind: Lab\n".encode("utf-16"))
@example(b"kind: Lab\nmetadata: {name: caf\xe9}\n")
def test_file_bytes(raw: bytes) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "lab.yaml"
        path.write_bytes(raw)
        refused_or_read(load_spec, path)
