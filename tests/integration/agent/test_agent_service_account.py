"""A pod's service-account token: the REAL agent, API server (with a signing key, etcd), registry
and pod VM (TCG).

The API server's ServiceAccount admission adds the ``kube-api-access-*`` projected volume; the agent
asks TokenRequest for a token bound to the pod and writes it with the namespace and ``ca.crt``
(projected like the other files); the pod prints them; the token printed inside the pod is a
user the API server knows (``system:serviceaccount:<ns>:default``, 403 not 401), bound to that pod.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from nestlab.images import oci
from tests.integration.agent.conftest import (
    NODE,
    AgentProcess,
    Registry,
    push_image,
    start_agent,
    stop_agent,
    wait_until,
)
from tests.integration.api.conftest import ApiServer, EtcdMember, Pki, service_account_apiserver

pytestmark = pytest.mark.integration
NS = "agent-sa"
BOOT_S = 240.0  # a TCG pod boots in seconds; a loaded two-core machine may need much more
DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SCRIPT = f'cat {DIR}/token; echo; echo "NS $(cat {DIR}/namespace)"; cat {DIR}/ca.crt; sleep 3600'


@pytest.fixture
def sa_api(pki: Pki, etcd_cluster: list[EtcdMember]) -> Iterator[ApiServer]:
    with service_account_apiserver(pki, etcd_cluster, "nestlab-sa-agent-") as server:
        yield server


@pytest.fixture
def sa_agent(
    sa_api: ApiServer, registry: Registry, pod_boot: tuple[Path, Path], tmp_path: Path
) -> Iterator[AgentProcess]:
    agent = start_agent(sa_api, registry, pod_boot, tmp_path)
    try:
        yield agent
    finally:
        stop_agent(agent)


def _logs(agent: AgentProcess, api: ApiServer, name: str) -> str:
    context = ssl.create_default_context(cafile=str(api.pki.ca))
    context.load_cert_chain(
        str(api.pki.alice_cert), str(api.pki.alice_key)
    )  # the log port wants lab-CA clients
    url = f"{agent.log_url}/containerLogs/{NS}/{name}/main"
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:  # noqa: S310 - loopback
            return str(response.read().decode())
    except urllib.error.HTTPError as exc:  # no log yet (the container has not started)
        exc.close()
        return ""


def test_the_pod_reads_its_bound_token_namespace_and_ca(
    sa_api: ApiServer, sa_agent: AgentProcess, registry: Registry, busybox_root: Path
) -> None:
    push_image(registry, "demo/busybox", ["1"], busybox_root, oci.Recipe(cmd=("sh",)))
    ca_pem = sa_api.pki.ca.read_text()
    for path, body in (
        ("/api/v1/namespaces", {"metadata": {"name": NS}}),
        (f"/api/v1/namespaces/{NS}/serviceaccounts", {"metadata": {"name": "default"}}),
        (
            f"/api/v1/namespaces/{NS}/configmaps",
            {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": ca_pem}},
        ),
    ):
        code, answer = sa_api.request("POST", path, body)
        assert code in (201, 409), answer
    pod = {
        "metadata": {"name": "reader"},
        "spec": {
            "nodeName": NODE,
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "main", "image": "demo/busybox:1", "command": ["sh", "-c", SCRIPT]}],
        },
    }
    code, made = sa_api.request("POST", f"/api/v1/namespaces/{NS}/pods", pod)
    assert code == 201, made
    wait_until(
        lambda: "NS " in _logs(sa_agent, sa_api, "reader"), "the pod to print its token", timeout=BOOT_S
    )
    lines = _logs(sa_agent, sa_api, "reader").splitlines()
    token = lines[0]
    assert lines[1] == f"NS {NS}"
    assert "\n".join(lines[2:]).strip() == ca_pem.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "reader", "uid": made["metadata"]["uid"]}
    assert claims["exp"] - claims["iat"] == 3607
    code, refused = sa_api.request("GET", f"/api/v1/namespaces/{NS}/secrets", token=token)
    assert code == 403, refused  # authenticated as the ServiceAccount (401 would mean unverified)
    assert f'User "system:serviceaccount:{NS}:default"' in refused["message"]

    sa_api.request("DELETE", f"/api/v1/namespaces/{NS}/pods/reader")
    wait_until(
        lambda: sa_api.request("GET", f"/api/v1/namespaces/{NS}/pods/reader")[0] == 404,
        "pod removed",
        timeout=120,
    )
