"""Which lab nodes a provisioning run can skip: a digest per host of everything its plays read.

A second ``nestlab up`` of an unchanged, running lab used to run the whole playbook again (about two
minutes of tasks that all answer "ok"). Each host's digest covers the playbook, the roles its
plays apply (with the roles they import), the whole inventory (templates read other hosts'
variables), the extra variables and the content of the lab files the roles copy. After a run
succeeds the digest is recorded on the outer machine and written to the node's own disk (a node
whose disk was rebuilt has lost it). A host is skipped only when both still hold the digest computed
now; anything else (changed inputs, a rebuilt node, a node that did not answer, a failed run) re-runs
it. A node that merely restarted keeps its digest: it comes back as after ``nestlab node start``,
which needs no provisioning either, so ``up`` after the outer machine rebooted only boots nodes.

Pure: digests and decisions from texts, mappings and file digests; reading files and nodes is
:mod:`nestlab.provision.incremental`'s business.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import yaml

DIGEST_VERSION = "1"  # bump when what goes into a digest changes: every node re-runs once

_ROLE_REF = re.compile(r"(?:import|include)_role:\s*\n\s+name:\s*['\"]?([^\s'\"]+)")


@dataclass(frozen=True)
class Play:
    """One play of a playbook: its host pattern and the roles it applies."""

    pattern: str
    roles: tuple[str, ...]


def parse_plays(playbook_text: str) -> list[Play] | None:
    """The plays of a playbook, or None when they cannot be known from its text alone (imports,
    tasks outside roles, patterns that are not one group, host or ``all``)."""
    try:
        plays = yaml.safe_load(playbook_text)
    except yaml.YAMLError:
        return None
    if not isinstance(plays, list):
        return None
    found = []
    for play in plays:
        if not isinstance(play, dict) or not isinstance(play.get("hosts"), str):
            return None
        if any(key in play for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "import_playbook")):
            return None
        roles = []
        for role in play.get("roles") or []:
            name = role.get("role") if isinstance(role, dict) else role
            if not isinstance(name, str) or "{{" in name:
                return None
            roles.append(name)
        found.append(Play(play["hosts"].strip(), tuple(roles)))
    return found


def referenced_roles(task_texts: Iterable[str], meta_text: str | None) -> set[str] | None:
    """Roles a role pulls in (``import_role``/``include_role`` in its tasks, ``dependencies`` in its
    meta); None when one is named by a template (unknown before run time)."""
    names: set[str] = set()
    for text in task_texts:
        names.update(_ROLE_REF.findall(text))
    if meta_text:
        try:
            meta = yaml.safe_load(meta_text) or {}
        except yaml.YAMLError:
            return None
        for dep in meta.get("dependencies") or [] if isinstance(meta, dict) else []:
            name = dep.get("role") if isinstance(dep, dict) else dep
            if not isinstance(name, str):
                return None
            names.add(name)
    return None if any("{{" in name for name in names) else names


def role_closure(roots: Iterable[str], refs: Mapping[str, set[str] | None]) -> set[str] | None:
    """``roots`` and every role they reach through ``refs``; None when any reached role is unknown
    (not in ``refs``) or has references that cannot be known."""
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name not in refs:
            return None
        reached = refs[name]
        if reached is None:
            return None
        stack.extend(reached)
    return seen


def host_groups(inventory: Mapping[str, Any]) -> dict[str, set[str]]:
    """Host -> the groups it is in (``all`` included), from an inventory mapping."""
    groups: dict[str, set[str]] = {}

    def walk(name: str, group: Mapping[str, Any], parents: tuple[str, ...]) -> None:
        for host in group.get("hosts") or {}:
            groups.setdefault(str(host), set()).update({*parents, name})
        for child, sub in (group.get("children") or {}).items():
            walk(str(child), sub or {}, (*parents, name))

    walk("all", inventory.get("all") or {}, ())
    return groups


def roles_for_host(
    host: str, groups: set[str], plays: Sequence[Play] | None, refs: Mapping[str, set[str] | None]
) -> set[str] | None:
    """The roles the plays run on ``host`` (with what they import); None when unknown."""
    if plays is None:
        return None
    roots = [role for play in plays if play.pattern in groups or play.pattern == host for role in play.roles]
    return role_closure(roots, refs)


def host_digest(
    host: str,
    *,
    playbook: str,
    roles: Mapping[str, Mapping[str, str]],
    inventory: Mapping[str, Any],
    extravars: Mapping[str, Any],
    files: Mapping[str, str],
) -> str:
    """The digest of a host's inputs. ``roles`` maps each role the host runs to its files' digests
    (relative path -> sha256); ``files`` maps every lab input file to its sha256."""
    document = {
        "version": DIGEST_VERSION,
        "host": host,
        "playbook": hashlib.sha256(playbook.encode()).hexdigest(),
        "roles": {name: dict(sorted(roles[name].items())) for name in sorted(roles)},
        "inventory": inventory,
        "extravars": extravars,
        "files": dict(sorted(files.items())),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Reason(Enum):
    """Why a host is provisioned (or not) in this run."""

    UNCHANGED = "unchanged since its last provisioning"
    NEVER = "not provisioned yet"
    INPUTS = "roles, inventory, variables or lab files changed"
    NODE = "node rebuilt, or its copy of the digest missing"
    FORCED = "full provisioning asked for"


@dataclass(frozen=True)
class Decision:
    """Per host: whether the playbook must run on it, and why."""

    reasons: Mapping[str, Reason]

    @property
    def stale(self) -> list[str]:
        """Hosts the playbook must run on, in inventory order."""
        return [host for host, reason in self.reasons.items() if reason is not Reason.UNCHANGED]

    @property
    def skipped(self) -> list[str]:
        return [host for host, reason in self.reasons.items() if reason is Reason.UNCHANGED]

    def summary(self) -> str:
        """One line for the progress log."""
        if not self.stale:
            return f"every node ({len(self.reasons)}) unchanged since its last provisioning: playbook skipped"
        by_reason: dict[Reason, list[str]] = {}
        for host in self.stale:
            by_reason.setdefault(self.reasons[host], []).append(host)
        parts = [f"{', '.join(hosts)}: {reason.value}" for reason, hosts in by_reason.items()]
        if self.skipped:
            parts.append(f"skipped (unchanged): {', '.join(self.skipped)}")
        return "; ".join(parts)


def decide(
    computed: Mapping[str, str],
    recorded: Mapping[str, str],
    on_node: Mapping[str, str | None],
    *,
    force: bool = False,
) -> Decision:
    """Compare the digests computed now with the outer machine's record and each node's copy
    (None: the node has none, or did not answer)."""
    reasons: dict[str, Reason] = {}
    for host, digest in computed.items():
        if force:
            reasons[host] = Reason.FORCED
        elif host not in recorded:
            reasons[host] = Reason.NEVER
        elif recorded[host] != digest:
            reasons[host] = Reason.INPUTS
        elif on_node.get(host) != digest:
            reasons[host] = Reason.NODE
        else:
            reasons[host] = Reason.UNCHANGED
    return Decision(reasons)
