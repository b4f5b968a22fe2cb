"""The one place the proxy runs ``nft``: transactions in, counts out.

Every change goes through :meth:`Nft.apply`, one ``nft -f -`` per call: nft sends the whole input
as one netlink batch, which the kernel commits atomically or not at all, so a failed transaction
leaves the previous rules in force. :meth:`Nft.counts` reads the table back (``nft -j``) for the
bench and for operators. ``prefix`` runs nft elsewhere (``ip netns exec NS`` in tests and the
bench); the runner is passed in so unit tests can record commands instead.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nestlab.errors import NestlabError
from nestlab.proxy.rules import FAMILY_TABLE
from nestlab.runtime import proc

NFT_TIMEOUT_S = 60.0
"""A full load of a large table (thousands of chains) on a loaded 2-core machine stays well below."""


class NftError(NestlabError):
    """nft refused a transaction or could not list the table."""


@dataclass(frozen=True)
class Counts:
    """How big the table is."""

    chains: int
    rules: int
    sets: int
    """Named sets (affinity) and maps."""
    elements: int
    """Elements of all maps and sets (dynamic affinity entries included)."""


class Nft:
    """Runs nft through ``run`` (optionally behind ``prefix``, e.g. ``ip netns exec NS``)."""

    def __init__(self, run: proc.Runner = proc.run, prefix: Sequence[str] = ()) -> None:
        self._run = run
        self._prefix = tuple(prefix)

    def apply(self, commands: Sequence[str]) -> None:
        """Commit ``commands`` as one atomic transaction (nothing at all when empty)."""
        if not commands:
            return
        script = "\n".join(commands) + "\n"
        try:
            self._run([*self._prefix, "nft", "-f", "-"], timeout=NFT_TIMEOUT_S, stdin=script)
        except proc.ProcessError as exc:
            raise NftError(f"nftables transaction of {len(commands)} commands refused: {exc}") from exc

    def exists(self) -> bool:
        """Whether the table is there (gone after ``nft flush ruleset``, e.g. nftables.service).

        ``nft list tables`` prints one line per table: cheap, where listing ours prints every rule.
        """
        try:
            done = self._run([*self._prefix, "nft", "list", "tables"], timeout=NFT_TIMEOUT_S)
        except proc.ProcessError as exc:
            raise NftError(f"cannot list the nftables tables: {exc}") from exc
        return f"table {FAMILY_TABLE}" in (line.strip() for line in done.stdout.splitlines())

    def listing(self) -> list[dict[str, Any]]:
        """The table as nft's JSON objects (``table``, ``chain``, ``rule``, ``set``, ``map``...)."""
        try:
            done = self._run(
                [*self._prefix, "nft", "-j", "list", "table", *FAMILY_TABLE.split()], timeout=NFT_TIMEOUT_S
            )
        except proc.ProcessError as exc:
            raise NftError(f"cannot list table {FAMILY_TABLE}: {exc}") from exc
        try:
            return list(json.loads(done.stdout).get("nftables") or [])
        except (ValueError, AttributeError) as exc:
            raise NftError(f"nft -j printed something that is not its JSON: {done.stdout[:200]!r}") from exc

    def counts(self) -> Counts:
        """Chains, rules, sets and elements of the table now."""
        return count(self.listing())


def count(listing: Sequence[dict[str, Any]]) -> Counts:
    """Counts of an ``nft -j`` listing (pure: the unit tests feed it JSON)."""
    chains = rules = sets = elements = 0
    for item in listing:
        if "chain" in item:
            chains += 1
        elif "rule" in item:
            rules += 1
        elif "set" in item or "map" in item:
            sets += 1
            elements += len((item.get("set") or item.get("map") or {}).get("elem") or [])
    return Counts(chains, rules, sets, elements)
