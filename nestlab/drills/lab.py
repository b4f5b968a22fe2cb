"""The lab as a drill reaches it: its API through the VIP, SSH to its nodes, node stop and start.

Every side effect of the drills goes through here (the API through
:class:`~nestlab.api.client.ApiClient` with the lab-admin certificate, commands on nodes through
:class:`~nestlab.provision.remote.Remote`, node power through :mod:`nestlab.lifecycle`), so the
drills read as the steps an administrator takes and unit tests can replace this one object.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from nestlab import labnodes, lifecycle, maintenance
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.status import ApiError
from nestlab.drills import health
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles
from nestlab.provision.remote import SSH_UNREACHABLE, Remote
from nestlab.runtime import proc
from nestlab.spec.model import Role

Obj = dict[str, Any]
Progress = Callable[[str], None]
API_TIMEOUT_S = 5.0  # one API call of the drill itself (the probes have their own)
POLL_S = 1.0  # how often a drill looks for the outcome it waits for: the figures' resolution
HEALTHY_TIMEOUT_S = 600.0  # a host and the cp/lb nodes placed on it boot and rejoin on two loaded cores
ETCDCTL = (
    "ETCDCTL_API=3 etcdctl --command-timeout=3s --cacert=/etc/nestlab/pki/ca.crt"
    " --cert=/etc/nestlab/pki/node.crt --key=/etc/nestlab/pki/node.key --endpoints=https://127.0.0.1:2379"
)
HAPROXY_STAT = "/usr/local/sbin/haproxy-cmd show stat"


class DrillError(NestlabError):
    """The drill could not do or observe what it set out to (the lab is still restored)."""


def wait_until(check: Callable[[], bool], what: str, timeout: float, poll: float = POLL_S) -> float:
    """Poll ``check`` until true; the seconds it took. DrillError after ``timeout``."""
    started = time.monotonic()
    while True:
        if check():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise DrillError(f"{what}: not seen within {timeout:g} s")
        time.sleep(poll)


class DrillLab:
    """Lab ``name``, as far as a drill touches it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.plan = labnodes.saved_plan(name)  # UsageError: no such lab
        self.files = LabFiles.named(name)
        self.credentials: Credentials = maintenance.credentials(name)  # UsageError: never up
        self.remote = Remote(self.files)

    # --- the plan ------------------------------------------------------------------------------

    def nodes(self, role: Role) -> list[str]:
        return [str(n.name) for n in self.plan.nodes if n.role is role]

    def placed_on(self, node: str) -> str:
        return str(self.plan.node(node).placed_on)

    @property
    def vip(self) -> str:
        return str(self.plan.vip)

    # --- the API -------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: Any = None, timeout: float = API_TIMEOUT_S) -> Obj:
        """One request through the VIP as lab admin; ApiError on refusal or no answer (503)."""

        async def call() -> Obj:
            client = ApiClient(self.credentials, timeout=timeout)
            try:
                return await client.request(method, path, body)
            finally:
                await client.close()

        return asyncio.run(call())

    def get(self, path: str) -> Obj | None:
        """GET; None on 404 or when the API does not answer."""
        try:
            return self.api("GET", path)
        except ApiError:
            return None

    def items(self, path: str) -> list[Obj] | None:
        """A list's items; None when the API does not answer."""
        found = self.get(path)
        return None if found is None else list(found.get("items") or [])

    # --- nodes ---------------------------------------------------------------------------------

    def sh(self, node: str, script: str, *, check: bool = True) -> proc.Result:
        """A shell script on a node as root."""
        return self.remote.run(node, ["sh", "-c", script], check=check)

    def node_stop(self, node: str) -> list[str]:
        """``nestlab node stop NODE`` (a host takes the nodes placed on it down with it)."""
        return labnodes.node_stop(self.name, node)

    def node_start(self, node: str, progress: Progress) -> list[str]:
        """``nestlab node start NODE``."""
        return labnodes.node_start(self.name, node, progress)

    def node_states(self) -> dict[str, str]:
        return {str(s.name): str(s.state) for s in lifecycle.status(self.name, check_ssh=False)}

    def vip_holders(self) -> list[str]:
        held = []
        for lb in self.nodes(Role.LOAD_BALANCER):
            out = self.sh(lb, "ip -o -4 addr show", check=False)
            if out.returncode == 0 and health.holds_vip(out.stdout, self.vip):
                held.append(lb)
        return held

    def etcd_leader(self, ask: list[str] | None = None) -> str | None:
        """The control-plane node whose etcd member leads, as the first of ``ask`` that answers sees it."""
        for cp in ask or self.nodes(Role.CONTROL_PLANE):
            out = self.sh(
                cp, f"{ETCDCTL} endpoint status -w json; echo '#'; {ETCDCTL} member list -w json", check=False
            )
            if out.returncode == SSH_UNREACHABLE or "#" not in out.stdout:
                continue
            status, _, members = out.stdout.partition("#")
            return health.etcd_leader(status.strip(), members.strip())
        return None

    def attest(self, host: str | None = None) -> tuple[int, list[Obj]]:
        """``nestlab attest [HOST] --json``: exit code and verdicts."""
        result = lifecycle.attest(self.name, host, True)
        try:
            document = json.loads(result.stdout)
        except ValueError as exc:
            raise DrillError(
                f"nestlab attest printed no JSON (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()[-300:]}"
            ) from exc
        verdicts = document if isinstance(document, list) else document.get("verdicts", [])
        return result.returncode, [v for v in verdicts if isinstance(v, dict)]

    # --- health --------------------------------------------------------------------------------

    def health(self, *, trust: bool = False) -> list[str]:
        """What keeps the lab from being whole; empty when healthy. ``trust``: every host attests too."""
        problems = health.stopped_nodes(self.node_states())
        if problems:
            return problems  # the rest would only repeat it
        nodes = self.items("/api/v1/nodes")
        if nodes is None:
            return [f"the API does not answer through the VIP {self.vip}"]
        problems += health.node_problems(nodes, self.nodes(Role.HOST), trust=trust)
        stats: dict[str, str | None] = {}
        for lb in self.nodes(Role.LOAD_BALANCER):
            out = self.sh(lb, HAPROXY_STAT, check=False)
            stats[lb] = None if out.returncode == SSH_UNREACHABLE else out.stdout
        cps = self.nodes(Role.CONTROL_PLANE)
        problems += health.lb_problems(stats, cps)
        vip = health.vip_problem(self.vip_holders(), self.vip)
        problems += [vip] if vip else []
        out = self.sh(cps[0], f"{ETCDCTL} endpoint health --cluster -w json", check=False)
        healthy = health.etcd_healthy(out.stdout)
        if len(healthy) < len(cps):
            problems.append(f"etcd: {len(healthy)} of {len(cps)} members healthy")
        if trust and not problems:
            code, verdicts = self.attest()
            failed = [str(v.get("host")) for v in verdicts if v.get("passed") is not True]
            if code != 0:
                problems.append(f"attestation fails for {', '.join(failed) or 'some host'}")
        return problems

    def require_healthy(self, *, trust: bool = False) -> None:
        """UsageError (one line, exit 2) unless the lab is up and whole."""
        problems = self.health(trust=trust)
        if problems:
            raise UsageError(
                f"lab {self.name} is not up and healthy, so no drill runs on it: {'; '.join(problems)} "
                f"(see `nestlab status --name {self.name}`)"
            )

    def wait_healthy(
        self, progress: Progress, *, trust: bool = False, timeout: float = HEALTHY_TIMEOUT_S
    ) -> float:
        """Poll :meth:`health` until it is empty; seconds taken. DrillError naming what is left."""
        started = time.monotonic()
        last: list[str] = []
        while True:
            try:
                problems = self.health(trust=trust)
            except NestlabError as exc:
                problems = [str(exc)]
            if not problems:
                return time.monotonic() - started
            if problems != last:
                progress(f"waiting for the lab to be whole: {'; '.join(problems)}")
                last = problems
            if time.monotonic() - started > timeout:
                raise DrillError(f"lab {self.name} not healthy after {timeout:g} s: {'; '.join(problems)}")
            time.sleep(2 * POLL_S)

    def pods_on(self, host: str) -> list[Obj]:
        return self.items(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{host}") or []
