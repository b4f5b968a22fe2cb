"""nft command text for table ``ip nestlab-policy``: a whole table, or the step from one state to the next.

:mod:`nestlab.proxy.policy` says what the table should hold; this module says how to get there in
one ``nft -f -`` transaction (the commands, one a line, are what
:meth:`nestlab.proxy.nft.Nft.apply` takes) (atomic: traffic sees the old rules or the new, never a mix). At
start-up :func:`full` deletes and rebuilds the table in one transaction, so the rules keep
working while the proxy restarts. After that :func:`diff` touches only what changed: set
elements added and deleted (a pod's address joining a policy's set), and the chains whose rules
changed rewritten with ``flush chain`` + ``add rule`` (a policy edited). Nothing here names any
other table.
"""

from __future__ import annotations

from collections.abc import Iterable

from nestlab.proxy.policy import GATE, NftSet, Ruleset

TABLE = "ip nestlab-policy"
BASE_CHAIN = "{ type filter hook forward priority filter; policy accept; }"
_CHUNK = 256  # elements per ``add element`` line: keeps lines short enough to read in an error


def _elements(command: str, name: str, elements: Iterable[str]) -> list[str]:
    ordered = sorted(elements)
    return [
        f"{command} element {TABLE} {name} {{ {', '.join(ordered[i : i + _CHUNK])} }}"
        for i in range(0, len(ordered), _CHUNK)
    ]


def _add_set(name: str, spec: NftSet) -> list[str]:
    return [f"add set {TABLE} {name} {{ type {spec.type}; }}", *_elements("add", name, spec.elements)]


def _add_chain(name: str) -> str:
    return f"add chain {TABLE} {name}" + (f" {BASE_CHAIN}" if name == GATE else "")


def _rules(name: str, rules: Iterable[str]) -> list[str]:
    return [f"add rule {TABLE} {name} {rule}" for rule in rules]


def full(ruleset: Ruleset) -> list[str]:
    """The whole table, replacing whatever table ``ip nestlab-policy`` held (one transaction)."""
    lines = [f"add table {TABLE}", f"delete table {TABLE}", f"add table {TABLE}"]
    for name in sorted(ruleset.sets):
        lines += _add_set(name, ruleset.sets[name])
    lines += [_add_chain(name) for name in sorted(ruleset.chains)]
    for name in sorted(ruleset.chains):
        lines += _rules(name, ruleset.chains[name])
    return lines


def diff(old: Ruleset, new: Ruleset) -> list[str]:
    """The commands turning table ``old`` into ``new`` (none when they are the same).

    Order matters inside the transaction: new sets and chains exist before a rule names them,
    and a chain or set is deleted only once no rule refers to it any more.
    """
    if any(old.sets[name].type != spec.type for name, spec in new.sets.items() if name in old.sets):
        return full(new)  # a set changed type: never happens with policy.py's names, but stay correct
    lines: list[str] = []
    for name in sorted(new.sets):
        spec = new.sets[name]
        if name not in old.sets:
            lines += _add_set(name, spec)
            continue
        before = old.sets[name].elements
        lines += _elements("delete", name, before - spec.elements)
        lines += _elements("add", name, spec.elements - before)
    lines += [_add_chain(name) for name in sorted(set(new.chains) - set(old.chains))]
    gone = sorted(set(old.chains) - set(new.chains))
    lines += [f"flush chain {TABLE} {name}" for name in gone]
    for name in sorted(new.chains):
        rules = new.chains[name]
        if name not in old.chains:
            lines += _rules(name, rules)
        elif old.chains[name] != rules:
            lines += [f"flush chain {TABLE} {name}", *_rules(name, rules)]
    lines += [f"delete chain {TABLE} {name}" for name in gone]
    lines += [f"delete set {TABLE} {name}" for name in sorted(set(old.sets) - set(new.sets))]
    return lines
