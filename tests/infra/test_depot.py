"""The depot serves the wheelhouse (nestlab and its base dependencies) and runs the OCI registry."""

from __future__ import annotations

import json

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts("depot")


def test_nginx_and_the_registry_run(host: Host) -> None:
    for unit in ("nginx", "docker-registry"):
        assert host.service(unit).is_running, unit
        assert host.service(unit).is_enabled, unit
    assert host.socket("tcp://0.0.0.0:80").is_listening


def test_depot_serves_the_wheelhouse_index_and_every_wheel(host: Host) -> None:
    manifest = json.loads(host.check_output("curl -fsS http://depot/wheels/wheelhouse.json"))
    index = host.check_output("curl -fsS http://depot/wheels/")
    wheels = sorted(f.split("/")[-1] for f in host.check_output("ls /srv/nestlab-depot/wheels/").split())
    assert manifest["nestlabWheel"] in wheels
    # cryptography: the API servers encrypt Secrets at rest (the apiserver extra)
    for name in ("aiohttp-", "click-", "rich-", "pyyaml-", "pip-", "cryptography-"):
        assert any(w.lower().startswith(name) for w in wheels), name
    assert not any(w.lower().startswith(("pulumi", "ansible")) for w in wheels), wheels
    for wheel in wheels:
        if wheel.endswith(".whl"):
            assert f'href="{wheel}"' in index
    status = host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' http://depot/wheels/{manifest['nestlabWheel']}"
    )
    assert status == "200"


def test_registry_answers_the_distribution_api_and_asks_for_a_token(host: Host) -> None:
    # auth: token (registry projects): no token, 401 and a challenge naming the API's token service
    headers = host.check_output("curl -sS -D - -o /dev/null http://127.0.0.1:5000/v2/")
    assert headers.split()[1] == "401", headers
    assert 'Www-Authenticate: Bearer realm="https://' in headers, headers
    assert '/nestlab/v1/registry/token",service="depot"' in headers, headers
    config = host.file("/etc/docker/registry/config.yml").content_string
    assert "rootcertbundle: /etc/docker/registry/registry-token.crt" in config
    assert host.file("/etc/docker/registry/registry-token.crt").exists


def test_depot_serves_the_signed_apt_repository(host: Host) -> None:
    in_release = host.check_output("curl -fsS http://127.0.0.1/apt/dists/nestlab/InRelease")
    assert "-----BEGIN PGP SIGNED MESSAGE-----" in in_release
    assert "-----BEGIN PGP SIGNATURE-----" in in_release
    packages = host.check_output("curl -fsS http://127.0.0.1/apt/dists/nestlab/main/binary-amd64/Packages")
    assert "Package: nestlab-pod-kernel" in packages


def test_the_datastore_runs_and_answers_lab_clients_only(host: Host) -> None:
    # nestlab-datastore: persistent volumes (the CNS stand-in), mutual TLS with the lab CA
    assert host.service("nestlab-datastore").is_running
    assert host.service("nestlab-datastore").is_enabled
    pki = "/etc/nestlab/pki"
    address = host.check_output("hostname -I").split()[0]
    url = f"https://{address}:9443/healthz"
    mutual = f"--cacert {pki}/ca.crt --cert {pki}/node.crt --key {pki}/node.key"
    assert host.run(f"curl -fsS {mutual} {url}").rc == 0
    anonymous = host.run(f"curl -sS --cacert {pki}/ca.crt -o /dev/null {url}")
    assert anonymous.rc != 0, "the datastore answered a client without a lab certificate"
