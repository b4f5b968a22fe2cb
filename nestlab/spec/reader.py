"""A typed reader over one YAML mapping that records every problem with its field path.

Parsing with it never stops at the first error: a wrong value is recorded and the default is
returned, so the user sees all problems of a spec in one run. Unknown keys are reported by
:meth:`Section.finish`, with a "did you mean" when a known key is close.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar, cast

from nestlab.spec.errors import SpecIssue

T = TypeVar("T")

_SIZE = re.compile(r"^\s*(\d{1,12})\s*(MiB|GiB|TiB|M|G|T)?\s*$")  # 12 digits: far above any machine
_UNIT_MIB = {
    None: 1,
    "M": 1,
    "MiB": 1,
    "G": 1024,
    "GiB": 1024,
    "T": 1024 * 1024,
    "TiB": 1024 * 1024,
}


def type_name(value: object) -> str:
    """The YAML-facing name of a value's type, for messages."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "mapping"
    return names.get(type(value), type(value).__name__)


class Section:
    """The fields of one mapping at ``path``; every accessor records what it reads."""

    def __init__(self, data: object, path: str, issues: list[SpecIssue]) -> None:
        self.path = path
        self.issues = issues
        self._seen: set[str] = set()
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            self.fail("", f"must be a mapping, got {type_name(data)}", "write key: value pairs")
            data = {}
        self._data: Mapping[str, Any] = data

    def at(self, key: str) -> str:
        """The path of a field of this section."""
        name = key if key.isprintable() else repr(key)  # one problem, one line: no raw newlines
        return f"{self.path}.{name}" if self.path else name

    def fail(self, key: str, message: str, hint: str = "") -> None:
        """Record a problem with field ``key`` (or with the section itself when key is empty)."""
        self.issues.append(SpecIssue(self.at(key) if key else (self.path or "document"), message, hint))

    def has(self, key: str) -> bool:
        """Whether the user wrote ``key``."""
        return key in self._data

    def raw(self, key: str) -> object:
        """The value as written (None when absent), marking the key as known."""
        self._seen.add(key)
        return self._data.get(key)

    def section(self, key: str) -> Section:
        """A nested mapping (empty when absent)."""
        return Section(self.raw(key), self.at(key), self.issues)

    def _typed(self, key: str, default: T, kind: type, what: str, example: str) -> T:
        value = self.raw(key)
        if value is None:
            return default
        # bool is a subclass of int in Python but not in YAML's eyes.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(key, f"must be {what}, got {type_name(value)} {value!r}", f"e.g. {example}")
            return default
        return cast(T, value)

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        """A whole number in ``[low, high]``."""
        value = self._typed(key, default, int, "an integer", f"{key}: {default}")
        if not low <= value <= high:
            self.fail(key, f"must be between {low} and {high}, got {value}")
            return default
        return value

    def boolean(self, key: str, default: bool) -> bool:
        """true or false."""
        return self._typed(key, default, bool, "true or false", f"{key}: {str(default).lower()}")

    def string(self, key: str, default: str) -> str:
        """A string."""
        return self._typed(key, default, str, "a string", f'{key}: "{default}"')

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``."""
        value = self.string(key, default)
        if value not in choices:
            self.fail(key, f"unknown value {value!r}", f"use one of: {', '.join(choices)}")
            return default
        return value

    def size_mib(self, key: str, default_mib: int) -> int:
        """A size such as ``4GiB`` or ``512MiB`` (a bare number means MiB), in MiB."""
        value = self.raw(key)
        if value is None:
            return default_mib
        match = _SIZE.match(str(value)) if isinstance(value, int | str) else None
        if match is None or isinstance(value, bool):
            self.fail(key, f"is not a size: {value!r}", "write e.g. 512MiB or 4GiB")
            return default_mib
        return int(match.group(1)) * _UNIT_MIB[match.group(2)]

    def network(self, key: str, default: IPv4Network) -> IPv4Network:
        """An IPv4 network in CIDR form with no host bits set."""
        value = self.raw(key)
        if value is None:
            return default
        try:
            return IPv4Network(str(value), strict=True)
        except ValueError as exc:
            self.fail(key, f"is not an IPv4 network: {value!r} ({exc})", "write e.g. 198.18.0.0/24")
            return default

    def address(self, key: str) -> IPv4Address | None:
        """An IPv4 address, or None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        try:
            return IPv4Address(str(value))
        except ValueError:
            self.fail(key, f"is not an IPv4 address: {value!r}", "write e.g. 198.18.0.5")
            return None

    def items(self, key: str) -> list[object] | None:
        """A list, or None when absent."""
        value = self.raw(key)
        if value is None:
            return None
        if not isinstance(value, list):
            self.fail(key, f"must be a list, got {type_name(value)}", f"write {key}: [...]")
            return None
        return value

    def finish(self) -> None:
        """Report the keys nothing asked for."""
        for key in self._data:
            if key in self._seen:
                continue
            if not isinstance(key, str):
                self.fail("", f"has a non-string key {key!r}")
                continue
            close = difflib.get_close_matches(key, sorted(self._seen), n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(self._seen))}"
            self.fail(key, "unknown field", hint)
