"""YAML for lab specs, stricter than ``yaml.safe_load``: a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a spec that sets ``hosts`` twice would
silently lose the first block. A learner editing a spec by hand makes that mistake easily; the lab
names both lines instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

MAX_DEPTH = 20
"""Nesting levels a spec may have (it needs five). Composing a YAML tree recurses once per level,
so a document nested thousands deep is refused from the event stream, before composing, fast."""


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds one key twice; ``line`` is the 1-based line of the second one."""

    def __init__(self, key: str, line: int, first_line: int) -> None:
        super().__init__(f"key {key!r} appears twice in one mapping (first on line {first_line})")
        self.line = line
        self.hint = f"keep one {key!r} (a YAML reader would silently keep only the last)"


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (merge keys ``<<`` keep their YAML meaning)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader reports it below
                continue
            if first is not None:
                raise DuplicateKeyError(str(key), key_node.start_mark.line + 1, first)
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


class TooDeepError(yaml.YAMLError):
    """The document nests deeper than :data:`MAX_DEPTH`; ``line`` is where it crossed it."""

    def __init__(self, line: int) -> None:
        super().__init__(f"nests deeper than {MAX_DEPTH} levels")
        self.line = line
        self.hint = "a lab spec needs five levels at most: look for unclosed [ or { brackets"


def _events(text: str) -> Iterator[yaml.Event]:
    """The parser's events (libyaml's when present: the pure-Python scanner is quadratic on deep
    flow collections); a syntax error ends them, for the loader to report."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        yield from yaml.parse(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        if "nesting depth" in str(exc.problem):  # libyaml's own limit (1000 levels) came first
            raise TooDeepError(getattr(exc.problem_mark, "line", 0) + 1) from None
    except yaml.YAMLError:
        return


def check_depth(text: str) -> None:
    """Raise TooDeepError when ``text`` nests too deep; other YAML errors are left to the loader."""
    depth = 0
    for event in _events(text):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise TooDeepError(getattr(event.start_mark, "line", 0) + 1)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
