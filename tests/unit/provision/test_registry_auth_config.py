"""The depot registry's token authentication as configured: the role renders distribution's ``auth: token``
with the realm on the VIP, the API server unit names the signing key, and the lab PKI makes the key
and a certificate of it once and keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from nestlab import paths
from nestlab.api import main as api_main
from nestlab.api import registrytoken
from nestlab.provision import pki

ROLES = paths.repo_root() / "roles"


def _render(role: str, template: str, prefix: str, extra: dict[str, Any]) -> str:
    defaults: dict[str, Any] = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)  # noqa: S701 - config files
    env.filters["comment"] = lambda text: f"# {text}"
    context = {"ansible_managed": "managed by Ansible", **extra}
    context |= {k: v for k, v in defaults.items() if not isinstance(v, str) or "{{" not in v}
    context |= {k: env.from_string(v).render(context) for k, v in defaults.items() if k.startswith(prefix)}
    return env.from_string((ROLES / role / "templates" / template).read_text()).render(context)


def test_the_registry_asks_for_tokens_from_the_vip_and_trusts_the_lab_signer() -> None:
    config = yaml.safe_load(
        _render(
            "depot",
            "registry.yml.j2",
            "depot_registry_token_",
            {"nestlab_vip": "198.18.0.100", "nestlab_state_dir": "/s"},
        )
    )
    assert config["auth"]["token"] == {
        "realm": "https://198.18.0.100:6443" + registrytoken.PATH,
        "service": registrytoken.DEFAULT_SERVICE,
        "issuer": registrytoken.DEFAULT_ISSUER,
        "rootcertbundle": "/etc/docker/registry/registry-token.crt",
    }


def test_every_registry_token_default_is_documented() -> None:
    defaults = yaml.safe_load((ROLES / "depot" / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((ROLES / "depot" / "meta" / "argument_specs.yml").read_text())["argument_specs"][
        "main"
    ]["options"]
    ours = [name for name in defaults if name.startswith("depot_registry_token_")]
    assert len(ours) == 5
    assert [name for name in ours if name not in specs] == []


def test_the_api_server_unit_signs_registry_tokens_with_the_installed_key() -> None:
    unit = (ROLES / "control_plane" / "templates" / "nestlab-apiserver.service.j2").read_text()
    line = next(line for line in unit.splitlines() if "--registry-token-signing-key-file" in line)
    assert (
        line.rstrip("\\").strip()
        == "--registry-token-signing-key-file={{ control_plane_pki_dir }}/registry-token.key"
    )
    services = (ROLES / "control_plane" / "tasks" / "services.yml").read_text()
    assert "    - registry-token.key\n" in services
    config = api_main.parse_args(
        ["--etcd-servers", "http://e:2379", "--registry-token-signing-key-file", "/k"]
    )
    assert config.registry_tokens == registrytoken.TokenConfig(Path("/k"))
    assert api_main.parse_args(["--etcd-servers", "http://e:2379"]).registry_tokens is None


def test_the_signer_certificate_is_made_once_for_the_kept_key(tmp_path: Path) -> None:
    first = pki.ensure_registry_token_cert(tmp_path, "lab")
    cert_bytes, key_bytes = first.cert.read_bytes(), first.key.read_bytes()
    again = pki.ensure_registry_token_cert(tmp_path, "lab")
    assert (again.cert.read_bytes(), again.key.read_bytes()) == (cert_bytes, key_bytes)
    cert = x509.load_pem_x509_certificate(cert_bytes)
    key = registrytoken.load_key(first.key)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    assert first.key.stat().st_mode & 0o777 == 0o600
    first.cert.unlink()  # a lost certificate is made again for the same key
    assert (
        x509.load_pem_x509_certificate(
            pki.ensure_registry_token_cert(tmp_path, "lab").cert.read_bytes()
        ).public_key()
        == cert.public_key()
    )
