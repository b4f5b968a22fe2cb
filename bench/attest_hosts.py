"""The control-plane verifier's cost per host, and for N hosts one after the other vs concurrently.

Run:  .venv/bin/python bench/attest_hosts.py [--hosts N] [--rounds R]

Starts N simulated hosts, each with its own REAL swtpm (enrolled, registered, AK certificate from
real lab keys) answered by nestlab-agent's own ``POST /attestation`` application over TLS with
client certificates, as on a lab host. Measures what :class:`nestlab.controller.verifier.Verifier`
does per host: fresh nonce -> HTTPS challenge -> quote + log on the host -> AK certificate checks
(openssl) -> tpm2_checkquote, replay and policy. Recording on the Node is left out (an in-memory
client takes the writes), so the figures are the verifier's own, without API server latency.
Prints medians (ms) and the sequential/concurrent ratio. Every swtpm is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nestlab.controller.verifier import Verifier, VerifierSettings, agent_tls
from nestlab.runtime import proc
from nestlab.trust import keys
from tests.integration.api.attest_hosts import (
    AgentEndpoints,
    Host,
    policy_for,
    server_tls,
    start_host,
    stop_hosts,
)


class MemoryClient:
    """Lists the simulated Nodes and takes the verifier's writes without an API server."""

    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self.nodes = nodes

    async def list(self, resource: object, namespace: str = "") -> dict[str, Any]:
        return {"items": self.nodes}

    async def patch(self, *args: object) -> dict[str, Any]:
        return {}

    async def request(self, *args: object, **kwargs: object) -> dict[str, Any]:
        return {}


def tls_files(directory: Path) -> tuple[Path, Path, Path, Path, Path]:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    ca, ca_key = directory / "ca.crt", directory / "ca.key"
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subject = ["-days", "1", "-subj", "/CN=bench-ca"]
    proc.run(
        ["openssl", "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(ca), *subject], timeout=60
    )
    issued = []
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        key, csr, cert = (directory / f"{name}.{suffix}" for suffix in ("key", "csr", "crt"))
        (directory / f"{name}.ext").write_text(ext)
        request = ["-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}"]
        proc.run(["openssl", "req", "-new", *new_key, *request], timeout=60)
        signing = ["-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial", "-days", "1"]
        output = ["-out", str(cert), "-extfile", str(directory / f"{name}.ext")]
        proc.run(["openssl", "x509", "-req", "-in", str(csr), *signing, *output], timeout=60)
        issued += [cert, key]
    return ca, issued[0], issued[1], issued[2], issued[3]


def node(name: str, port: int) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "resourceVersion": "1"},
        "spec": {},
        "status": {
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        },
    }


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main(hosts_count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="nestlab-bench-attest-") as tmp:
        root = Path(tmp)
        ca, server_cert, server_key, client_cert, client_key = tls_files(root)
        lab_keys = keys.ensure_lab_keys(root / "keys", "bench")
        endpoints = AgentEndpoints(server_tls(server_cert, server_key, ca))
        hosts: list[Host] = []
        try:
            nodes = []
            for index in range(hosts_count):
                hosts.append(start_host(f"esx-{index + 1:02d}", root / "hosts", lab_keys))
                nodes.append(node(hosts[-1].name, endpoints.serve(hosts[-1])))
            policy = root / "policy.json"
            policy.write_text(json.dumps(policy_for(hosts[0].files).to_json()))
            tls = agent_tls(ca, client_cert, client_key)
            report(nodes, VerifierSettings(policy, lab_keys.ca_cert, tls), rounds)
        finally:
            endpoints.close()
            stop_hosts(hosts, root / "hosts")


def report(nodes: list[dict[str, Any]], settings: VerifierSettings, rounds: int) -> None:
    async def one_host() -> list[float]:
        verifier = Verifier(MemoryClient(nodes[:1]), settings)  # type: ignore[arg-type]
        policy = verifier.load_policy()
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            verdict, _ak = await verifier.attest(nodes[0], policy)
            samples.append(time.perf_counter() - started)
            if not verdict.passed:
                raise SystemExit(f"a clean host failed attestation: {verdict.reasons}")
        return samples

    async def all_hosts(concurrency: int) -> list[float]:
        base = VerifierSettings(settings.policy, settings.attestation_ca, settings.agent_tls, concurrency)
        verifier = Verifier(MemoryClient(nodes), base)  # type: ignore[arg-type]
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            outcomes = await verifier.attest_nodes()
            samples.append(time.perf_counter() - started)
            if not all(o.verdict.passed for o in outcomes):
                raise SystemExit(f"a clean host failed attestation: {[o.verdict.reasons for o in outcomes]}")
        return samples

    single = asyncio.run(one_host())
    sequential = asyncio.run(all_hosts(1))
    concurrent = asyncio.run(all_hosts(len(nodes)))
    print(f"one host, full attestation (median of {rounds}): {median_ms(single):.0f} ms")
    print(f"{len(nodes)} hosts sequential (median of {rounds}): {median_ms(sequential):.0f} ms")
    print(f"{len(nodes)} hosts concurrent (median of {rounds}): {median_ms(concurrent):.0f} ms")
    print(f"sequential / concurrent: {median_ms(sequential) / median_ms(concurrent):.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    main(args.hosts, args.rounds)
