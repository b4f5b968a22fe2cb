"""The lab CA signs one certificate per node with the right names; re-runs keep what fits."""

from __future__ import annotations

from ipaddress import IPv4Address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nestlab.provision import pki
from nestlab.provision.pki import ensure_lab_pki
from nestlab.spec import make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


def sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in names.get_values_for_type(x509.DNSName)} | {
        str(v) for v in names.get_values_for_type(x509.IPAddress)
    }


def test_node_certificates_signed_by_the_lab_ca(tmp_path: Path) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_lab_pki(plan, tmp_path)
    ca = x509.load_pem_x509_certificate(issued["ca"].cert.read_bytes())
    for name in ("cp-1", "esx-02", "lb-1", "depot", "admin"):
        cert = x509.load_pem_x509_certificate(issued[name].cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        assert (issued[name].key.stat().st_mode & 0o777) == 0o600
    assert {"cp-1", "198.18.0.21", "198.18.0.5", "127.0.0.1", "kubernetes"} <= sans(issued["cp-1"].cert)
    assert sans(issued["esx-02"].cert) == {"esx-02", "198.18.0.32"}
    admin = x509.load_pem_x509_certificate(issued["admin"].cert.read_bytes())
    assert admin.subject.rfc4514_string() == "O=system:masters,CN=admin"
    assert str(IPv4Address("198.18.0.5")) not in sans(issued["lb-1"].cert)


def test_rerun_keeps_certificates_and_reissues_changed_ones(tmp_path: Path) -> None:
    first = ensure_lab_pki(make_plan(parse_spec(spec_yaml())), tmp_path)
    before = {name: issued.cert.read_bytes() for name, issued in first.items()}
    again = ensure_lab_pki(make_plan(parse_spec(spec_yaml())), tmp_path)
    assert {name: issued.cert.read_bytes() for name, issued in again.items()} == before
    moved = ensure_lab_pki(
        make_plan(parse_spec(spec_yaml({"loadBalancers": {"vip": "198.18.0.6"}}))), tmp_path
    )
    assert moved["cp-1"].cert.read_bytes() != before["cp-1"]
    assert moved["esx-01"].cert.read_bytes() == before["esx-01"]
    assert moved["ca"].cert.read_bytes() == before["ca"]


def test_signing_keys_are_made_once_and_kept(tmp_path: Path) -> None:
    first = pki.ensure_signing_key(tmp_path, "identity-signing.key")
    data = first.read_bytes()
    assert first.stat().st_mode & 0o777 == 0o600
    assert pki.ensure_signing_key(tmp_path, "identity-signing.key").read_bytes() == data


def test_a_signing_key_that_is_not_ec_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "service-account.key").write_bytes(pem)
    with pytest.raises(TypeError, match="not an EC key"):
        pki.ensure_signing_key(tmp_path, "service-account.key")


def test_api_server_certificates_name_the_kubernetes_service(tmp_path: Path) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_lab_pki(plan, tmp_path)
    cluster_ip = str(plan.lab.networks.services.network_address + 1)  # the kubernetes Service
    wanted = {
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        cluster_ip,
    }
    assert wanted <= sans(issued["cp-1"].cert)
    assert not wanted & sans(issued["esx-01"].cert)  # only API servers answer for it


def test_the_dns_feed_has_its_own_client_certificate(tmp_path: Path) -> None:
    issued = ensure_lab_pki(make_plan(parse_spec(spec_yaml())), tmp_path)
    dns = issued[pki.DNS_USER]
    assert dns.cert.name == "system:nestlab-dns.crt"
    assert (dns.key.stat().st_mode & 0o777) == 0o600
    cert = x509.load_pem_x509_certificate(dns.cert.read_bytes())
    assert cert.subject.rfc4514_string() == "CN=system:nestlab-dns"  # no group: its own roles only
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
    ca = x509.load_pem_x509_certificate(issued["ca"].cert.read_bytes())
    cert.verify_directly_issued_by(ca)
