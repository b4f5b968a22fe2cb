"""YAML for lab specs, stricter than ``yaml.safe_load``: a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so a spec that sets ``hosts`` twice would
silently lose the first block. A learner editing a spec by hand makes that mistake easily; the lab
names both lines instead.
"""

from __future__ import annotations

from typing import Any

import yaml


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
