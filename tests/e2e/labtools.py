"""Helpers shared by the e2e modules and the lab benches: kubectl, SSH and the API against a lab.

The fixtures built on them (``agents``: every host's Node Ready; ``namespace``: a namespace of the
test's own) are in conftest.py, so every module gets the same ones. bench/*.py import the same
helpers (through :func:`attach`) so a benchmark watches the lab exactly as the tests do.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from nestlab.paths import LabFiles
from nestlab.runtime import proc
from tests.e2e.conftest import KUBECTL, LiveLab, nestlab

REGISTRY = "depot:5000"
POD_TIMEOUT_S = 600.0  # TCG pods on a lab whose nine nodes share two cores
RESTORE_TIMEOUT_S = 600.0  # a host and the cp/lb nodes placed on it boot, rejoin and report Ready
LOG_PORT = 10250

Obj = dict[str, Any]


def attach(name: str) -> LiveLab:
    """A running lab that someone else stood up (benches run against it by name)."""
    files = LabFiles.named(name)
    if not files.plan.exists():
        raise SystemExit(f"no lab named {name!r} here ({files.plan} is missing): run `nestlab up` first")
    return LiveLab(name, files.root / "spec.yaml", files, "")


def kubectl(
    lab: LiveLab,
    *args: str,
    stdin: str | None = None,
    check: bool = True,
    binary: str = KUBECTL,
    timeout: float = POD_TIMEOUT_S,
) -> proc.Result:
    """kubectl (``binary``: the modern one or Debian's 1.20) with the lab's kubeconfig (server: the VIP)."""
    argv = [binary, "--kubeconfig", str(lab.files.kubeconfig), "--request-timeout=20s", *args]
    return proc.run(argv, timeout=timeout, check=check, stdin=stdin)


def get_json(lab: LiveLab, *args: str, binary: str = KUBECTL) -> Obj:
    """``kubectl get ARGS -o json``, parsed."""
    return dict(json.loads(kubectl(lab, "get", *args, "-o", "json", binary=binary).stdout))


def on_node(lab: LiveLab, node: str, command: str, *, check: bool = True) -> proc.Result:
    """A shell command on a lab node through `nestlab ssh`."""
    return nestlab("ssh", "--name", lab.name, node, "--", command, check=check)


def plan(lab: LiveLab) -> dict[str, Any]:
    return dict(json.loads(lab.files.plan.read_text()))


def nodes(lab: LiveLab, role: str) -> list[str]:
    return [str(n["name"]) for n in plan(lab)["nodes"] if n["role"] == role]


def placed_on(lab: LiveLab, node: str) -> str:
    """The host a node runs on (the depot and the cp/lb nodes share a host's failure domain)."""
    return next(str(n["placedOn"]) for n in plan(lab)["nodes"] if n["name"] == node)


def wait_for(
    check: Callable[[], bool], what: str, timeout: float = POD_TIMEOUT_S, *, transient: bool = False
) -> None:
    """Poll ``check`` every 2 s until it is true; AssertionError after ``timeout`` seconds.

    ``transient``: a failed command (kubectl while the VIP moves, SSH to a host still booting)
    counts as "not yet" instead of failing at once; the last such error is in the message.
    """
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except proc.ProcessError as exc:
            if not transient:
                raise
            last = f" (last error: {exc})"
        time.sleep(2)
    raise AssertionError(f"{what}: not true after {timeout:g}s{last}")


def apply(lab: LiveLab, obj: dict[str, Any], binary: str = KUBECTL) -> None:
    kubectl(lab, "apply", "-f", "-", stdin=json.dumps(obj), binary=binary)


def pod_json(lab: LiveLab, namespace: str, name: str) -> dict[str, Any]:
    return dict(json.loads(kubectl(lab, "get", "pod", name, "-n", namespace, "-o", "json").stdout))


def wait_phase(lab: LiveLab, namespace: str, name: str, phases: tuple[str, ...]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def reached() -> bool:
        seen.update(pod_json(lab, namespace, name))
        return (seen.get("status") or {}).get("phase") in phases

    wait_for(reached, f"pod {name} in {phases}", timeout=POD_TIMEOUT_S)
    return seen


def agent_logs(lab: LiveLab, host_ip: str, namespace: str, pod: str, container: str) -> str:
    context = ssl.create_default_context(cafile=str(lab.files.pki / "ca.crt"))
    context.load_cert_chain(str(lab.files.pki / "admin.crt"), str(lab.files.pki / "admin.key"))
    url = f"https://{host_ip}:{LOG_PORT}/containerLogs/{namespace}/{pod}/{container}"
    with urllib.request.urlopen(url, context=context, timeout=20) as response:
        return str(response.read().decode())


def address_of(lab: LiveLab, node: str) -> str:
    return next(str(n["address"]) for n in plan(lab)["nodes"] if n["name"] == node)


# --- reading objects (pure) ---------------------------------------------------------------------


def condition(obj: Obj, kind: str) -> str | None:
    """The status of condition ``kind`` of a pod or node, None when it has none."""
    for entry in (obj.get("status") or {}).get("conditions") or []:
        if entry.get("type") == kind:
            return str(entry.get("status"))
    return None


# --- the lab's state ----------------------------------------------------------------------------


def qemu_lines(lab: LiveLab, host: str) -> list[str]:
    """Command lines of the QEMU processes on ``host`` (the pod VMs)."""
    out = on_node(lab, host, "pgrep -af '[q]emu-system' || true")
    return [line for line in out.stdout.splitlines() if line.strip()]


def node_ready(lab: LiveLab, name: str) -> bool:
    out = kubectl(lab, "get", "node", name, "-o", "json", check=False)
    return out.returncode == 0 and condition(json.loads(out.stdout), "Ready") == "True"


def hosts_ready(lab: LiveLab) -> bool:
    """Every host's Node reports Ready."""
    out = kubectl(lab, "get", "nodes", "-o", "json", check=False)
    if out.returncode != 0:
        return False
    ready = {
        n["metadata"]["name"] for n in json.loads(out.stdout)["items"] if condition(n, "Ready") == "True"
    }
    return set(nodes(lab, "host")) <= ready


def lab_healthy(lab: LiveLab) -> bool:
    """Every LB sees every API server UP, kubectl answers through the VIP, every host's Node is Ready."""
    count = len(nodes(lab, "control-plane"))
    for lb in nodes(lab, "load-balancer"):
        out = on_node(lab, lb, "/usr/local/sbin/haproxy-cmd show stat", check=False)
        rows = out.stdout.splitlines()
        if sum(1 for row in rows if row.startswith("supervisor-api,cp-") and ",UP," in row) != count:
            return False
    return hosts_ready(lab)


def wait_lab_healthy(lab: LiveLab) -> None:
    """Until the lab is whole again after a host stop, so later tests start from a healthy lab."""
    what = "the lab healthy (every API server UP, every Node Ready)"
    wait_for(lambda: lab_healthy(lab), what, RESTORE_TIMEOUT_S, transient=True)


class LabApi:
    """The lab's API through the VIP as lab admin: raw status codes and bodies, a fresh connection per
    request (so a moved VIP costs one failed request, never a hung one)."""

    def __init__(self, lab: LiveLab, timeout: float = 10.0) -> None:
        self.host, self.port = str(plan(lab)["vip"]), 6443
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=str(lab.files.pki / "ca.crt"))
        self.context.check_hostname = False  # the VIP is a SAN, but bench users may pass an address
        self.context.load_cert_chain(str(lab.files.pki / "admin.crt"), str(lab.files.pki / "admin.key"))

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Obj]:
        """(HTTP status, JSON body or {}); OSError/HTTPException when the API cannot be reached."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        try:
            data = None if body is None else json.dumps(body)
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw.decode(errors="replace")}
        return response.status, parsed if isinstance(parsed, dict) else {"raw": parsed}

    def items(self, path: str, **query: str) -> list[Obj]:
        """The items of a list (``path`` a collection), with ``query`` (labelSelector, ...)."""
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        code, body = self.request("GET", path + suffix)
        if code != 200:
            raise OSError(f"GET {path}{suffix} answered {code}: {str(body)[:300]}")
        return list(body.get("items") or [])
