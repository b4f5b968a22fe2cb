"""The verifier on the control plane attests every host of the lab (quote, event log, policy)."""

from __future__ import annotations

import json

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts("control-plane")[:1]


def test_the_verifier_attests_every_host(host: Host) -> None:
    result = host.run("/opt/nestlab/bin/nestlab-attest --json")
    assert result.rc == 0, result.stdout + result.stderr
    verdicts = json.loads(result.stdout)
    verdicts = verdicts if isinstance(verdicts, list) else verdicts["verdicts"]
    assert sorted(v["host"] for v in verdicts) == sorted(n["name"] for n in lab.nodes("host"))
    assert all(v["passed"] for v in verdicts), [v["reasons"] for v in verdicts]
