"""Kernel config fragments: parse them, merge them into a base .config, and check the result.

Kconfig silently drops an option whose dependencies are not met (``make olddefconfig`` just
rewrites the file), so a fragment that asks for ``CONFIG_VIRTIO_MMIO=y`` can produce a kernel
without it and a pod that never finds its disks. Every option a fragment asks for is therefore
checked against the final .config, and the build fails naming the option and the fragment.
Pure functions only: the build itself lives in :mod:`nestlab.runtime.kernel`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NewType

from nestlab.errors import NestlabError

Option = NewType("Option", str)
"""A Kconfig symbol with its prefix, e.g. ``CONFIG_VIRTIO_MMIO``."""

NOT_SET = "n"  # how ``# CONFIG_X is not set`` is represented; the same value Kconfig uses

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$")
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


class KernelConfigError(NestlabError):
    """A fragment is malformed, fragments disagree, or the final .config lost a requested option."""


@dataclass(frozen=True)
class Requirement:
    """One option a fragment asks for."""

    option: Option
    """The symbol, ``CONFIG_`` prefix included."""
    value: str
    """``y``, ``n`` (not set), a number, or a quoted string, exactly as in the fragment."""
    source: str
    """Where it was asked for (``fragment-name:line``), for error messages."""


@dataclass(frozen=True)
class Mismatch:
    """A requested option whose final value differs."""

    requirement: Requirement
    actual: str
    """The value in the final .config (``n`` when absent or not set)."""

    def describe(self) -> str:
        """One line a user can act on."""
        req = self.requirement
        return (
            f"{req.option}: {req.source} asks for {req.value!r} but the final .config has {self.actual!r}"
            " (an unmet dependency? add it to the fragment)"
        )


def parse_line(line: str) -> tuple[Option, str] | None:
    """``(option, value)`` for a config line, None for blank lines and ordinary comments."""
    text = line.strip()
    if match := _SET.match(text):
        return Option(match.group(1)), match.group(2)
    if match := _UNSET.match(text):
        return Option(match.group(1)), NOT_SET
    return None


def parse_values(text: str) -> dict[Option, str]:
    """All options set in a .config (later assignments win, as in Kconfig)."""
    values: dict[Option, str] = {}
    for line in text.splitlines():
        parsed = parse_line(line)
        if parsed is not None:
            values[parsed[0]] = parsed[1]
    return values


def parse_fragment(name: str, text: str) -> list[Requirement]:
    """The requirements of one fragment; any line that is neither an option nor a comment is an error."""
    requirements = []
    for number, line in enumerate(text.splitlines(), start=1):
        parsed = parse_line(line)
        if parsed is not None:
            requirements.append(Requirement(parsed[0], parsed[1], f"{name}:{number}"))
        elif line.strip() and not line.lstrip().startswith("#"):
            raise KernelConfigError(
                f"{name}:{number}: not a config line: {line.strip()!r}"
                " (use CONFIG_X=value or '# CONFIG_X is not set')"
            )
    return requirements


def merge_fragments(fragments: Iterable[tuple[str, str]]) -> dict[Option, Requirement]:
    """Requirements of all fragments; two fragments asking different values for one option is an error."""
    merged: dict[Option, Requirement] = {}
    for name, text in fragments:
        for req in parse_fragment(name, text):
            earlier = merged.get(req.option)
            if earlier is not None and earlier.value != req.value:
                raise KernelConfigError(
                    f"{req.option}: {earlier.source} asks for {earlier.value!r}"
                    f" but {req.source} asks for {req.value!r}; keep one"
                )
            merged[req.option] = req
    return merged


def render(option: Option, value: str) -> str:
    """The .config line for ``option`` = ``value``."""
    return f"# {option} is not set" if value == NOT_SET else f"{option}={value}"


def apply(base: str, requirements: Mapping[Option, Requirement]) -> str:
    """``base`` .config text with every requested option replaced (what merge_config.sh does)."""
    kept = [line for line in base.splitlines() if (parse_line(line) or ("", ""))[0] not in requirements]
    kept.append("# nestlab fragments")
    kept.extend(render(req.option, req.value) for req in requirements.values())
    return "\n".join(kept) + "\n"


def check(requirements: Mapping[Option, Requirement], final: str) -> list[Mismatch]:
    """Requested options whose value in the ``final`` .config differs (absent counts as ``n``)."""
    values = parse_values(final)
    return [
        Mismatch(req, values.get(req.option, NOT_SET))
        for req in requirements.values()
        if values.get(req.option, NOT_SET) != req.value
    ]


def ensure(requirements: Mapping[Option, Requirement], final: str) -> None:
    """Raise :class:`KernelConfigError` naming every option the final .config lost."""
    mismatches = check(requirements, final)
    if mismatches:
        lines = "\n  ".join(m.describe() for m in mismatches)
        raise KernelConfigError(f"the kernel config does not match its fragments:\n  {lines}")
