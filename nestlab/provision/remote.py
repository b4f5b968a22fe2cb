"""Commands and files on lab nodes over SSH: the one place provisioning steps outside Ansible reach a node.

Some install-time steps need the outer machine's private keys (the attestation CA signs each host's
AK certificate), so they cannot run inside a playbook on the node. They talk to nodes through the
lab's ssh_config (strict host keys, the lab key, batch mode) and nothing else; file writes are
atomic (temporary file + rename on the node) so a half-written registration is never read.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Final

from nestlab.errors import NestlabError
from nestlab.paths import LabFiles
from nestlab.runtime import proc

SSH_TIMEOUT_S: Final = 120.0  # one command on a node of a loaded 2-core machine, with margin
SSH_UNREACHABLE: Final = 255  # ssh's own exit code when it could not reach or log in to the node


class RemoteError(NestlabError):
    """A command on a lab node failed; the message names the node and the command."""


@dataclass(frozen=True)
class Remote:
    """SSH to the nodes of one lab."""

    files: LabFiles
    runner: proc.Runner = proc.run

    def argv(self, node: str, command: list[str]) -> list[str]:
        return ["ssh", "-F", str(self.files.ssh_config), node, "--", shlex.join(command)]

    def run(
        self, node: str, command: list[str], *, stdin: str | None = None, check: bool = True
    ) -> proc.Result:
        """Run ``command`` on ``node``; RemoteError naming both when it fails and ``check`` is set."""
        try:
            result = self.runner(self.argv(node, command), timeout=SSH_TIMEOUT_S, stdin=stdin, check=False)
        except proc.ProcessError as exc:
            raise RemoteError(f"{node}: {shlex.join(command)}: {exc}") from exc
        if check and result.returncode != 0:
            tail = (result.stderr or result.stdout).strip()[-400:]
            where = "unreachable over SSH" if result.returncode == SSH_UNREACHABLE else "failed"
            raise RemoteError(f"{node}: `{shlex.join(command)}` {where} (exit {result.returncode}): {tail}")
        return result

    def read(self, node: str, path: str) -> str | None:
        """A text file's content on ``node``, or None when it does not exist."""
        result = self.run(
            node, ["sh", "-c", f"test -e {shlex.quote(path)} && cat {shlex.quote(path)}"], check=False
        )
        if result.returncode == SSH_UNREACHABLE:
            raise RemoteError(f"{node}: unreachable over SSH while reading {path}: {result.stderr.strip()}")
        return result.stdout if result.returncode == 0 else None

    def write(self, node: str, path: str, content: str, mode: str = "0644") -> bool:
        """Put ``content`` at ``path`` on ``node`` atomically; False when it was already there."""
        if self.read(node, path) == content:
            return False
        quoted = shlex.quote(path)
        script = (
            f'set -e; install -d -m 0755 "$(dirname {quoted})"; '
            f'tmp=$(mktemp {quoted}.XXXXXX); cat > "$tmp"; chmod {mode} "$tmp"; mv "$tmp" {quoted}'
        )
        self.run(node, ["sh", "-c", script], stdin=content)
        return True
