"""Run playbooks/site.yml only on the lab nodes whose inputs changed or that restarted since.

The decision is :mod:`nestlab.provision.playdigest`'s (pure); this module reads what it needs (the
roles' files, the lab files the roles copy, each node's copy of its digest, in parallel over SSH),
runs the playbook limited to the stale nodes (or not at all), and records the new digests on the
outer machine and on each node provisioned. ``full=True`` (``nestlab up --full``) runs every node.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from nestlab import paths
from nestlab.paths import LabFiles
from nestlab.provision import playdigest as pd
from nestlab.provision.ansible import run_playbook, write_inventory
from nestlab.provision.events import Tally
from nestlab.provision.inventory import inventory
from nestlab.provision.remote import Remote, RemoteError
from nestlab.spec.plan import Plan

Progress = Callable[[str], None]
PLAYBOOK = "site.yml"
NODE_DIGEST = "/var/lib/nestlab/provisioned.digest"  # on the node's disk: gone when its disk is rebuilt
RECORD = "provisioned.json"  # in the lab's ansible/ directory: host -> digest of its last good run
#: the entries of the lab directory the roles read (``nestlab_state_dir`` in roles/: a unit test
#: checks every reference is listed) and the archives made from them. Not inputs: node disks, logs,
#: bookkeeping, the kubeconfig, and attestation/ (registrations and the policy, which
#: nestlab.provision.attestation.setup puts on the nodes itself after every playbook run)
INPUTS = ("pki", "wheelhouse", "wheelhouse.tar", "apt", "trust-public")
SSH_PARALLEL = 9


class NodeFiles(Protocol):
    """Reading and writing a small file on a node (:class:`~nestlab.provision.remote.Remote`)."""

    def read(self, node: str, path: str) -> str | None: ...

    def write(self, node: str, path: str, content: str, mode: str = "0644") -> bool: ...


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def tree_digests(root: Path, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """Relative path -> sha256 of every regular file under ``root`` (or only under its top-level
    entries named in ``only``)."""
    found: dict[str, str] = {}
    if not root.is_dir():
        return found
    for entry in sorted(root.iterdir()):
        if only is not None and entry.name not in only:
            continue
        paths_ = [entry] if entry.is_file() else sorted(p for p in entry.rglob("*") if p.is_file())
        for path in paths_:
            if path.is_symlink() and not path.exists():
                continue
            found[str(path.relative_to(root))] = sha256_file(path)
    return found


def role_inputs(roles_dir: Path) -> tuple[dict[str, dict[str, str]], dict[str, set[str] | None]]:
    """Each role's file digests, and the roles each one imports."""
    digests: dict[str, dict[str, str]] = {}
    refs: dict[str, set[str] | None] = {}
    for role in sorted(p for p in roles_dir.iterdir() if p.is_dir()):
        digests[role.name] = tree_digests(role)
        tasks = [p.read_text(encoding="utf-8") for p in sorted((role / "tasks").glob("*.yml"))]
        meta = role / "meta" / "main.yml"
        meta_text = meta.read_text(encoding="utf-8") if meta.exists() else None
        refs[role.name] = pd.referenced_roles(tasks, meta_text)
    return digests, refs


def extravar_files(extravars: Mapping[str, Any], inside: Path) -> dict[str, str]:
    """Digests of the files and directories extra variables name outside the lab directory (the pod
    kernel and initramfs in the build cache)."""
    found: dict[str, str] = {}
    for value in extravars.values():
        if not isinstance(value, str) or not value.startswith("/"):
            continue
        path = Path(value)
        if path.is_relative_to(inside):
            continue  # the lab directory's files are digested on their own
        if path.is_file():
            found[value] = sha256_file(path)
        elif path.is_dir():
            found.update({f"{value}/{rel}": sha for rel, sha in tree_digests(path).items()})
    return found


def compute_digests(plan: Plan, files: LabFiles, extravars: Mapping[str, Any]) -> dict[str, str]:
    """Host -> digest of its provisioning inputs, for every node of the plan."""
    root = paths.repo_root()
    playbook = (root / "playbooks" / PLAYBOOK).read_text(encoding="utf-8")
    role_files, refs = role_inputs(root / "roles")
    inv = inventory(plan, files)
    groups = pd.host_groups(inv)
    plays = pd.parse_plays(playbook)
    lab_files = tree_digests(files.root, INPUTS)
    lab_files.update(extravar_files(extravars, files.root))
    digests: dict[str, str] = {}
    for node in plan.nodes:
        roles = pd.roles_for_host(node.name, groups.get(node.name, {"all"}), plays, refs)
        chosen = set(role_files) if roles is None else roles  # unknown: every role counts
        digests[node.name] = pd.host_digest(
            node.name,
            playbook=playbook,
            roles={name: role_files.get(name, {}) for name in chosen},
            inventory=inv,
            extravars=extravars,
            files=lab_files,
        )
    return digests


def _record_path(files: LabFiles) -> Path:
    return files.root / "ansible" / RECORD


def load_record(files: LabFiles) -> dict[str, str]:
    """Host -> digest of its last successful provisioning (empty when none or unreadable)."""
    try:
        record = json.loads(_record_path(files).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(record, dict):
        return {}
    return {str(k): str(v) for k, v in record.items() if isinstance(v, str)}


def save_record(files: LabFiles, record: Mapping[str, str]) -> None:
    path = _record_path(files)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(sorted(record.items())), indent=1) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_node_digests(remote: NodeFiles, hosts: Iterable[str]) -> dict[str, str | None]:
    """Each node's copy of its digest, read in parallel; None when absent or the node did not answer."""

    def one(host: str) -> str | None:
        try:
            text = remote.read(host, NODE_DIGEST)
        except RemoteError:
            return None
        return None if text is None else text.strip()

    names = list(hosts)
    with ThreadPoolExecutor(max_workers=SSH_PARALLEL) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def write_node_digests(remote: NodeFiles, digests: Mapping[str, str]) -> None:
    """Give each node its digest (in parallel); a node that does not take it is re-run next time."""

    def one(item: tuple[str, str]) -> None:
        # no copy on the node: the next `up` provisions it again, which is safe
        with contextlib.suppress(RemoteError):
            remote.write(item[0], NODE_DIGEST, item[1] + "\n")

    with ThreadPoolExecutor(max_workers=SSH_PARALLEL) as pool:
        list(pool.map(one, digests.items()))


def provision_site(
    plan: Plan,
    files: LabFiles,
    progress: Progress,
    extravars: Mapping[str, Any],
    *,
    full: bool = False,
    remote: NodeFiles | None = None,
    runner: Callable[..., Tally] = run_playbook,
) -> tuple[Tally, pd.Decision]:
    """Run site.yml on the nodes that need it; returns the run's tally and the decision taken."""
    remote = remote or Remote(files)
    write_inventory(plan, files)  # ssh_config for the digest reads, before anything else
    computed = compute_digests(plan, files, extravars)
    recorded = load_record(files)
    on_node = read_node_digests(remote, computed) if not full else {}
    decision = pd.decide(computed, recorded, on_node, force=full)
    progress(f"provisioning: {decision.summary()}")
    stale = decision.stale
    if not stale:
        return Tally(), decision
    # forget the stale hosts first: a run that fails half-way leaves them stale for the next `up`
    save_record(files, {h: d for h, d in recorded.items() if h not in stale and h in computed})
    limit = None if len(stale) == len(computed) else ",".join(stale)
    tally = runner(plan, files, progress, limit=limit, extravars=dict(extravars))
    done = {host: computed[host] for host in stale}
    write_node_digests(remote, done)
    save_record(files, {**load_record(files), **done})
    return tally, decision
