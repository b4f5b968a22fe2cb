"""The admin kubeconfig points at the VIP with the lab CA and the admin certificate, and kubectl-style
loaders can use it; the controller's certificate carries its group."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from nestlab.paths import LabFiles
from nestlab.provision.kubeconfig import ensure_controller_cert, write_kubeconfig
from nestlab.provision.pki import ensure_lab_pki
from nestlab.spec import make_plan, parse_spec
from tests.unit.spec.helpers import spec_yaml


@pytest.fixture
def files(tmp_path: Path) -> LabFiles:
    return LabFiles(tmp_path / "lab")


def test_kubeconfig_points_at_the_vip_with_lab_credentials(files: LabFiles) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_lab_pki(plan, files.pki)
    path = write_kubeconfig(plan, files)
    assert path == files.kubeconfig
    assert (path.stat().st_mode & 0o777) == 0o600
    config = yaml.safe_load(path.read_text())
    context = config["contexts"][0]["context"]
    assert config["current-context"] == config["contexts"][0]["name"] == plan.lab.name
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    assert cluster["server"] == f"https://{plan.vip}:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == issued["ca"].cert.read_bytes()
    assert base64.b64decode(user["client-certificate-data"]) == issued["admin"].cert.read_bytes()
    assert base64.b64decode(user["client-key-data"]) == issued["admin"].key.read_bytes()


def test_kubeconfig_rewrite_is_stable(files: LabFiles) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    ensure_lab_pki(plan, files.pki)
    first = write_kubeconfig(plan, files).read_text()
    assert write_kubeconfig(plan, files).read_text() == first


def test_kubeconfig_loads_in_the_kubernetes_client(files: LabFiles) -> None:
    kubernetes = pytest.importorskip("kubernetes")
    plan = make_plan(parse_spec(spec_yaml()))
    ensure_lab_pki(plan, files.pki)
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(str(write_kubeconfig(plan, files)), client_configuration=configuration)
    assert configuration.host == f"https://{plan.vip}:6443"
    assert configuration.cert_file
    assert configuration.key_file
    assert configuration.ssl_ca_cert


def test_controller_certificate_is_its_own_identity_not_a_lab_admin(files: LabFiles) -> None:
    plan = make_plan(parse_spec(spec_yaml()))
    issued = ensure_lab_pki(plan, files.pki)
    controller = ensure_controller_cert(plan, files)
    cert = x509.load_pem_x509_certificate(controller.cert.read_bytes())
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(issued["ca"].cert.read_bytes()))
    assert cert.subject.rfc4514_string() == "CN=system:nestlab-controller"
    assert ensure_controller_cert(plan, files).cert.read_bytes() == controller.cert.read_bytes()
