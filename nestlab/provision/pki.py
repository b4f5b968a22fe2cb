"""The lab CA and the TLS certificates of every node, made on the outer machine at ``up``.

etcd peers, API servers and clients trust only this CA. Keys are written 0600 in the lab's state
directory; each node receives its own certificate and key and the CA certificate, never the CA key.
Re-running keeps what exists (idempotent) unless a certificate no longer matches the plan.

The lab's encryption-at-rest key lives here too (``encryption-config.yaml``, an upstream
EncryptionConfiguration with one aesgcm key for Secrets): made once, 0600, copied to the
control-plane nodes only, and never replaced, since replacing it would make every stored Secret
unreadable.
"""

from __future__ import annotations

import datetime
import os
import secrets
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from nestlab.api import encryption
from nestlab.spec import addresses
from nestlab.spec.model import Role
from nestlab.spec.plan import Plan

VALIDITY = datetime.timedelta(days=365)  # a lab lives for days; a year never expires mid-exercise
ENCRYPTION_CONFIG = "encryption-config.yaml"
ENCRYPTION_KEY_NAME = "key1"  # upstream's documented first key name; a rotation adds key2 before it
ENCRYPTION_KEY_BYTES = 32  # AES-256


@dataclass(frozen=True)
class Issued:
    """A certificate and its key on disk."""

    cert: Path
    key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def ensure_encryption_config(pki: Path) -> Path:
    """The lab's EncryptionConfiguration (a fresh AES-256-GCM key for Secrets), created on first use.

    An existing file is kept, and must still load: a broken one is an error naming it, never
    silently replaced (its key is the only way to read the Secrets stored with it).
    """
    path = pki / ENCRYPTION_CONFIG
    if path.exists():
        encryption.load(path)
        return path
    pki.mkdir(parents=True, exist_ok=True)
    text = encryption.render(ENCRYPTION_KEY_NAME, secrets.token_bytes(ENCRYPTION_KEY_BYTES))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


SIGNING_KEYS = ("identity-signing.key", "service-account.key")
"""Token signing keys made with the lab PKI (EC P-256, ES256 JWTs): lab users' login tokens (the Token
Exchange Service's key) and bound service-account tokens (``--service-account-signing-key-file``)."""


def ensure_signing_key(pki: Path, name: str) -> Path:
    """A token signing key (PEM, PKCS8, 0600), made once and then kept: replacing it would make every
    token issued with it fail to verify."""
    path = pki / name
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{path} is not an EC key; move it away to make a new one")
        return path
    _write_key(path, ec.generate_private_key(ec.SECP256R1()))
    return path


REGISTRY_TOKEN_KEY = "registry-token.key"  # noqa: S105 - a file name
REGISTRY_TOKEN_CERT = "registry-token.crt"  # noqa: S105 - a file name
"""The depot registry's token signing key (control plane: the token service signs with it) and its
self-signed certificate (depot: distribution's ``auth.token.rootcertbundle``; the token header's ``kid``
is the libtrust key ID of this certificate's public key)."""


def ensure_registry_token_cert(pki: Path, lab_name: str) -> Issued:
    """The registry token signing key and a self-signed certificate of it, made once and kept."""
    key_path = ensure_signing_key(pki, REGISTRY_TOKEN_KEY)
    issued = Issued(pki / REGISTRY_TOKEN_CERT, key_path)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # noqa: S101 - ensure_signing_key checked it
    if issued.cert.exists():
        current = x509.load_pem_x509_certificate(issued.cert.read_bytes())
        if current.public_key() == key.public_key():
            return issued
    cert = _self_signed(key, f"nestlab {lab_name} registry token signer", ca=False)
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def _self_signed(key: ec.EllipticCurvePrivateKey, common_name: str, *, ca: bool) -> x509.Certificate:
    """A self-signed certificate of ``key``: the lab CA (``ca``), or the registry token signer."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY * 5)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    return builder.sign(key, hashes.SHA256())


def _load(issued: Issued) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(issued.cert.read_bytes())
    key = serialization.load_pem_private_key(issued.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{issued.key} is not an EC key")
    return cert, key


def ensure_ca(pki: Path, lab_name: str) -> Issued:
    """The lab CA, created on first use."""
    issued = Issued(pki / "ca.crt", pki / "ca.key")
    if issued.cert.exists() and issued.key.exists():
        return issued
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed(key, f"nestlab {lab_name} CA", ca=True)
    _write_key(issued.key, key)
    issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return issued


def issue(
    pki: Path,
    ca: Issued,
    name: str,
    *,
    organization: str | None = None,
    dns: tuple[str, ...] = (),
    ips: tuple[IPv4Address, ...] = (),
    server: bool = True,
) -> Issued:
    """A leaf certificate (server+client, or client only) signed by the lab CA; kept if it still fits."""
    issued = Issued(pki / f"{name}.crt", pki / f"{name}.key")
    wanted_sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ip) for ip in ips]
    if issued.cert.exists() and issued.key.exists():
        current = x509.load_pem_x509_certificate(issued.cert.read_bytes())
        try:
            sans = list(current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            sans = []
        if set(map(str, sans)) == set(map(str, wanted_sans)):
            return issued
    ca_cert, ca_key = _load(ca)
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if wanted_sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(wanted_sans), critical=False)
    _write_key(issued.key, key)
    issued.cert.write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return issued


DNS_USER = "system:nestlab-dns"
"""The cluster DNS feed's user (certificate CN, no group; file ``<pki>/system:nestlab-dns.crt``,
installed as ``dns.crt`` on control-plane nodes): the API server's built-in roles of the same name
grant what nestlab-dns reads and writes and nothing more (nestlab.api.bootstraproles), as
kube-proxy is ``system:kube-proxy`` rather than the controller manager."""


def api_server_names(plan: Plan) -> tuple[tuple[str, ...], tuple[IPv4Address, ...]]:
    """The names and addresses every API server certificate carries besides its node's own, as
    kubeadm's apiserver certificate: ``localhost``, the ``kubernetes`` Service's DNS names in the
    cluster domain and its ClusterIP (the first address of the Services CIDR: pods reach the API
    there), the VIP (the load balancers pass TLS through) and 127.0.0.1 (the local agents)."""
    service = "kubernetes.default.svc"
    names = (
        "localhost",
        "kubernetes",
        "kubernetes.default",
        service,
        f"{service}.{addresses.CLUSTER_DOMAIN}",
    )
    return names, (plan.vip, IPv4Address("127.0.0.1"), addresses.kubernetes_service_ip(plan.lab))


def ensure_lab_pki(plan: Plan, pki: Path) -> dict[str, Issued]:
    """The CA, one certificate per node (SANs: name, address; on control-plane nodes the API server's
    names too: :func:`api_server_names`), the lab-admin client certificate (``admin``, group
    ``system:masters``), the cluster DNS feed's (:data:`DNS_USER`) and the encryption config."""
    ca = ensure_ca(pki, plan.lab.name)
    out = {"ca": ca}
    for node in plan.nodes:
        ips: tuple[IPv4Address, ...] = (node.address,)
        dns: tuple[str, ...] = (node.name,)
        if node.role is Role.CONTROL_PLANE:
            extra_dns, extra_ips = api_server_names(plan)
            dns, ips = dns + extra_dns, ips + extra_ips
        out[node.name] = issue(pki, ca, node.name, dns=dns, ips=ips)
    out["admin"] = issue(pki, ca, "admin", organization="system:masters", server=False)
    out[DNS_USER] = issue(pki, ca, DNS_USER, server=False)
    ensure_encryption_config(pki)
    for name in SIGNING_KEYS:
        ensure_signing_key(pki, name)
    out["registry-token"] = ensure_registry_token_cert(pki, plan.lab.name)
    return out
