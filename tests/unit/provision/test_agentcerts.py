"""Agent client certificates carry the identity NodeRestriction expects."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from nestlab.provision.agentcerts import ensure_agent_certs
from nestlab.spec import make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


def test_one_client_certificate_per_host_named_system_node(tmp_path: Path) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_agent_certs(plan, tmp_path)
    hosts = sorted(n.name for n in plan.nodes if str(n.role) == "host")
    assert sorted(issued) == hosts
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    for host, files in issued.items():
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert cert.subject.rfc4514_string() == f"O=system:nodes,CN=system:node:{host}"
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
        assert files.cert.name == f"system:node:{host}.crt"
    again = ensure_agent_certs(plan, tmp_path)
    assert all(again[h].cert.read_bytes() == issued[h].cert.read_bytes() for h in hosts), "kept on re-run"
