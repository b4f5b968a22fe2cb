"""A tiny evaluator of the rules :mod:`nestlab.proxy.policy` writes, so unit tests can ask
"is this new connection allowed?" instead of comparing rule text.

It understands exactly the grammar the compiler emits (address sets, CIDRs with exceptions,
protocol/port matches and concatenations, jump/goto/accept/drop) and fails loudly on anything
else; the integration test runs the same rules through the real nft and kernel.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from nestlab.proxy.policy import GATE, Ruleset


@dataclass(frozen=True)
class Packet:
    """The first packet of a new connection, as the forward hook sees it (after DNAT)."""

    src: str
    dst: str
    proto: str = "tcp"
    port: int = 80


def _in_span(port: int, span: str) -> bool:
    low, _, high = span.partition("-")
    return int(low) <= port <= int(high or low)


def _address_in(address: str, items: list[str]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip in ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _braced(tokens: list[str], at: int) -> tuple[list[str], int]:
    """The comma-separated items of ``{ ... }`` starting at ``tokens[at]``, and the index after it."""
    end = tokens.index("}", at)
    return [i.strip() for i in " ".join(tokens[at + 1 : end]).split(",")], end + 1


def _ip(rules: Ruleset, packet: Packet, tokens: list[str], i: int) -> tuple[bool, int]:
    """``ip F @S``, ``ip F != @S``, ``ip F CIDR``, ``ip F != { ... }``, ``ip daddr . meta l4proto . th dport @S``."""
    value = packet.src if tokens[i + 1] == "saddr" else packet.dst
    if tokens[i + 2] == ".":
        key = f"{value} . {packet.proto} . {packet.port}"
        return key in rules.sets[tokens[i + 8].lstrip("@")].elements, i + 9
    negate = tokens[i + 2] == "!="
    at = i + 3 if negate else i + 2
    if tokens[at].startswith("@"):
        hit, after = value in rules.sets[tokens[at][1:]].elements, at + 1
    elif tokens[at] == "{":
        items, after = _braced(tokens, at)
        hit = _address_in(value, items)
    else:
        hit, after = _address_in(value, [tokens[at]]), at + 1
    return hit != negate, after


def _meta(_rules: Ruleset, packet: Packet, tokens: list[str], i: int) -> tuple[bool, int]:
    """``meta l4proto P`` or ``meta l4proto . th dport { P . SPAN, ... }``."""
    if tokens[i + 2] != ".":
        return tokens[i + 2] == packet.proto, i + 3
    items, after = _braced(tokens, i + 5)
    pairs = [item.split(" . ") for item in items]
    return any(p == packet.proto and _in_span(packet.port, s) for p, s in pairs), after


def _th(_rules: Ruleset, packet: Packet, tokens: list[str], i: int) -> tuple[bool, int]:
    return _in_span(packet.port, tokens[i + 2]), i + 3


def _ct(_rules: Ruleset, _packet: Packet, _tokens: list[str], i: int) -> tuple[bool, int]:
    return False, i + 3  # established,related: never true for a new connection


def _counter(_rules: Ruleset, _packet: Packet, _tokens: list[str], i: int) -> tuple[bool, int]:
    return True, i + 1


_MATCHERS = {"ip": _ip, "meta": _meta, "th": _th, "ct": _ct, "counter": _counter}


def _matches(rules: Ruleset, packet: Packet, tokens: list[str]) -> tuple[bool, list[str]]:
    """Whether every match of a rule holds; returns the verdict tokens left over."""
    i = 0
    while i < len(tokens) and tokens[i] in _MATCHERS:
        hit, i = _MATCHERS[tokens[i]](rules, packet, tokens, i)
        if not hit:
            return False, []
    if i >= len(tokens):
        raise AssertionError(f"rule without a verdict: {tokens}")
    return True, tokens[i:]


def verdict(rules: Ruleset, packet: Packet, chain: str = GATE) -> str:
    """``accept`` or ``drop`` for a new connection: the chain walk nft would do."""
    stack: list[tuple[str, int]] = []
    position = 0
    while True:
        body = rules.chains[chain]
        if position >= len(body):
            if not stack:
                return "accept"  # the base chain's policy
            chain, position = stack.pop()
            continue
        rule = body[position]
        position += 1
        text = rule.split(' comment "')[0]
        tokens = re.sub(r"([{},])", r" \1 ", text).split()
        hit, action = _matches(rules, packet, tokens)
        if not hit:
            continue
        if action[0] in ("accept", "drop"):
            return action[0]
        if action[0] == "jump":
            stack.append((chain, position))
        elif action[0] != "goto":
            raise AssertionError(f"unknown verdict in {rule!r}")
        chain, position = action[1], 0
