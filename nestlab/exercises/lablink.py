"""The real :class:`~nestlab.exercises.base.Lab`: a lab that ``nestlab up`` stood up, reached with
its lab-admin credentials (the API through the VIP), the machine's kubectl, ``nestlab ssh`` and the
substrate's view of which node machines run.

Checks read through :meth:`LabLink.get` / :meth:`LabLink.items` (the API client, no kubectl
parsing) and act through commands, exactly what a learner could type; every process goes through
:func:`nestlab.runtime.proc.run`.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from nestlab import labnodes, lifecycle, maintenance
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.status import ApiError
from nestlab.errors import NestlabError, UsageError
from nestlab.exercises.base import Obj
from nestlab.paths import repo_root
from nestlab.runtime import proc
from nestlab.substrate.local import lifecycle as local

COMMAND_TIMEOUT_S = 300.0  # one call of a check or reset; a namespace delete is the slowest
API_TIMEOUT_S = 15.0  # one API read; the VIP may be moving during an exercise that kills a leader
KUBECTL = "kubectl"


class LabLink:
    """Lab ``name`` as the exercises' checks and resets see it."""

    def __init__(
        self,
        name: str,
        *,
        run: proc.Runner = proc.run,
        credentials: Credentials | None = None,
        kubeconfig: Path | None = None,
    ) -> None:
        """Lab ``name``'s saved admin kubeconfig and certificates (UsageError: no such lab, or not
        up yet), or the ``credentials`` and ``kubeconfig`` given (an API server of a test)."""
        self.name = name
        self._run = run
        self.kubeconfig = kubeconfig or lifecycle.kubeconfig(name)
        self._credentials: Credentials = credentials or maintenance.credentials(name)

    def _request(self, path: str) -> Obj | None:
        async def fetch() -> Obj:
            client = ApiClient(self._credentials, timeout=API_TIMEOUT_S)
            try:
                return await client.request("GET", path)
            finally:
                await client.close()

        try:
            return asyncio.run(fetch())
        except ApiError as exc:
            if exc.code == 404:
                return None
            if exc.code == 503:
                raise UsageError(self.not_up(exc.message)) from exc
            raise NestlabError(f"GET {path}: the API server refused: {exc.message}") from exc

    def not_up(self, why: str) -> str:
        """The one line that says the lab does not answer."""
        return (
            f"lab {self.name} does not answer at {self._credentials.server} ({why}): "
            f"is it up? (`.venv/bin/nestlab status --name {self.name}`)"
        )

    def require_up(self) -> None:
        """UsageError (one line) unless the lab's API answers."""
        self._request("/version")

    def get(self, path: str) -> Obj | None:
        """GET an API path; None when it answers 404."""
        return self._request(path)

    def items(self, path: str) -> list[Obj]:
        """The ``items`` of a list path (empty when the path answers 404)."""
        found = self._request(path)
        items: list[Any] = [] if found is None else list(found.get("items") or [])
        return [item for item in items if isinstance(item, dict)]

    def _command(self, argv: list[str], check: bool, env: dict[str, str] | None = None) -> str:
        result = self._run(argv, timeout=COMMAND_TIMEOUT_S, check=check, env=env, cwd=repo_root())
        return result.stdout

    def kubectl(self, *args: str, check: bool = True) -> str:
        """The machine's kubectl with the lab-admin kubeconfig; its stdout."""
        argv = [KUBECTL, "--kubeconfig", str(self.kubeconfig), "--request-timeout=30s", *args]
        return self._command(argv, check)

    def nestlab(self, *args: str, check: bool = True) -> str:
        """This venv's ``nestlab`` with ``NESTLAB_LAB`` set; its stdout."""
        env = dict(os.environ, NESTLAB_LAB=self.name, KUBECONFIG=str(self.kubeconfig))
        return self._command([str(Path(sys.executable).parent / "nestlab"), *args], check, env)

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        """A shell command on a lab node as root (what ``nestlab ssh NODE -- COMMAND`` runs)."""
        argv = local.ssh_argv(labnodes.saved_plan(self.name), node, [command])
        return self._command(argv, check)

    def node_running(self, node: str) -> bool:
        """Whether the node's machine runs (the substrate's view, no SSH login)."""
        for status in lifecycle.status(self.name, check_ssh=False):
            if status.name == node:
                return str(status.state) == "running"
        raise UsageError(f"lab {self.name} has no node {node!r}")
