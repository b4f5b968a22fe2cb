"""A small model of what the kernel does with the proxy's nft commands, strict where it is strict.

It keeps chains (with rules), sets and map elements of one table and refuses what nftables
refuses: a rule in a missing chain, a jump/goto or ``@set`` to something missing, deleting a chain
or set still referenced, deleting a missing element, re-adding an element with another verdict.
Feeding it ``full(a)`` then ``update(a, b)`` must give the same table as ``full(b)``: that is how
the unit tests check that incremental transactions mean what a full rebuild means.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from nestlab.proxy.rules import FAMILY_TABLE

_REF = re.compile(r"(?:goto|jump) ([\w-]+)")
_SET_REF = re.compile(r"@([\w-]+)")
_ELEMENT = re.compile(r"\{ (.+?)(?: : (.+))? \}$")


class RefusedError(AssertionError):
    """nft would refuse this command (and with it the whole transaction)."""


@dataclass
class Table:
    chains: dict[str, list[str]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    exists: bool = False

    def references(self) -> set[str]:
        found: set[str] = set()
        for rules in self.chains.values():
            for rule in rules:
                found |= set(_REF.findall(rule)) | set(_SET_REF.findall(rule))
        for elements in self.maps.values():
            for verdict in elements.values():
                found |= set(_REF.findall(verdict))
        return found

    def apply(self, commands: list[str]) -> None:
        """All or nothing, like one ``nft -f``."""
        scratch = Table(
            {k: list(v) for k, v in self.chains.items()},
            dict(self.sets),
            {k: dict(v) for k, v in self.maps.items()},
            self.exists,
        )
        for command in commands:
            scratch.one(command)
        self.chains, self.sets, self.maps, self.exists = (
            scratch.chains,
            scratch.sets,
            scratch.maps,
            scratch.exists,
        )

    def one(self, command: str) -> None:
        verb, kind, rest = command.split(" ", 2)
        assert rest.startswith(FAMILY_TABLE), command
        rest = rest[len(FAMILY_TABLE) :].strip()
        if kind == "table":
            if verb == "delete":
                if not self.exists:
                    raise RefusedError(command)
                self.chains, self.sets, self.maps, self.exists = {}, {}, {}, False
            else:
                self.exists = True
            return
        if not self.exists:
            raise RefusedError(f"no table: {command}")
        name, _, body = rest.partition(" ")
        getattr(self, f"_{verb}_{kind}")(command, name, body)

    def _add_chain(self, command: str, name: str, body: str) -> None:
        self.chains.setdefault(name, [])

    def _flush_chain(self, command: str, name: str, body: str) -> None:
        if name not in self.chains:
            raise RefusedError(command)
        self.chains[name] = []

    def _delete_chain(self, command: str, name: str, body: str) -> None:
        if name not in self.chains or self.chains[name] or name in self.references():
            raise RefusedError(command)
        del self.chains[name]

    def _add_rule(self, command: str, name: str, body: str) -> None:
        if name not in self.chains:
            raise RefusedError(command)
        for target in _REF.findall(body):
            if target not in self.chains:
                raise RefusedError(f"{command}: no chain {target}")
        for target in _SET_REF.findall(body):
            if target not in self.sets and target not in self.maps:
                raise RefusedError(f"{command}: no set {target}")
        self.chains[name].append(body)

    def _add_set(self, command: str, name: str, body: str) -> None:
        if self.sets.get(name, body) != body:
            raise RefusedError(f"{command}: exists with other properties")
        self.sets[name] = body

    def _delete_set(self, command: str, name: str, body: str) -> None:
        if name not in self.sets or name in self.references():
            raise RefusedError(command)
        del self.sets[name]

    def _add_map(self, command: str, name: str, body: str) -> None:
        self.maps.setdefault(name, {})

    def _add_element(self, command: str, name: str, body: str) -> None:
        match = _ELEMENT.match(body)
        assert match is not None, command
        key, verdict = match.group(1), match.group(2)
        for target in _REF.findall(verdict or ""):
            if target not in self.chains:
                raise RefusedError(f"{command}: no chain {target}")
        if self.maps[name].get(key, verdict) != verdict:
            raise RefusedError(f"{command}: element exists with another verdict")
        self.maps[name][key] = verdict

    def _delete_element(self, command: str, name: str, body: str) -> None:
        match = _ELEMENT.match(body)
        assert match is not None, command
        if match.group(1) not in self.maps[name]:
            raise RefusedError(command)
        del self.maps[name][match.group(1)]


def load(commands: list[str]) -> Table:
    table = Table()
    table.apply(commands)
    return table
