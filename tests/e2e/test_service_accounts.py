"""Service accounts on the teaching lab (issue 14 item 4, "What it must show": a pod's service-account
token lists pods only when a RoleBinding allows it).

- every new namespace gets a ``default`` ServiceAccount and the ``kube-root-ca.crt`` ConfigMap (the
  controller);
- a pod finds its token, ``ca.crt`` and namespace at /var/run/secrets/kubernetes.io/serviceaccount
  (projected by the agent, bound to the pod) and reaches the ``kubernetes`` Service from inside;
- that token, used from outside against the VIP, is ``system:serviceaccount:<ns>:default``: 403 on
  ``get pods`` until a RoleBinding to ``view`` names the ServiceAccount, then the pod list; still no
  write; 401 once the pod is gone (bound tokens die with their pod);
- ``kubectl create token`` (TokenRequest) gives a working token too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt

from tests.e2e.conftest import KUBECTL, LiveLab
from tests.e2e.labtools import apply, kubectl, plan, wait_for, wait_phase
from tests.e2e.services import CLIENT
from tests.e2e.workloads import LIMITS

Obj = dict[str, Any]
DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
# this busybox has no `nc -z`: `nc -w 2 HOST PORT </dev/null` exits 0 when the port is open
SCRIPT = (
    f'cat {DIR}/token; echo; echo "NS $(cat {DIR}/namespace)"; '
    f'grep -q "BEGIN CERTIFICATE" {DIR}/ca.crt && echo "CA OK"; '
    "for i in $(seq 60); do nc -w 2 kubernetes.default.svc.cluster.local 443 </dev/null && "
    'echo "API OPEN" && break; sleep 2; done; sleep 3600'
)


def token_kubeconfig(lab: LiveLab, path: Path, token: str) -> Path:
    """A kubeconfig that authenticates with ``token`` only (no client certificate)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "lab",
                "cluster": {
                    "server": f"https://{plan(lab)['vip']}:6443",
                    "certificate-authority": str(lab.files.pki / "ca.crt"),
                },
            }
        ],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "lab", "user": "sa"}}],
        "current-context": "sa",
    }
    path.write_text(json.dumps(config))
    return path


def as_token(config: Path, *args: str) -> tuple[int, str]:
    """kubectl with the token kubeconfig: (exit code, stdout + stderr)."""
    from nestlab.runtime import proc

    result = proc.run(
        [KUBECTL, "--kubeconfig", str(config), "--request-timeout=20s", *args], timeout=60, check=False
    )
    return result.returncode, result.stdout + result.stderr


def logs(lab: LiveLab, namespace: str, name: str) -> list[str]:
    return kubectl(lab, "logs", name, "-n", namespace, check=False).stdout.splitlines()


def test_namespaces_get_a_default_account_and_the_root_ca(agents: LiveLab, namespace: str) -> None:
    wait_for(
        lambda: (
            kubectl(agents, "get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0
        ),
        "the default ServiceAccount",
    )
    wait_for(
        lambda: (
            kubectl(agents, "get", "configmap", "kube-root-ca.crt", "-n", namespace, check=False).returncode
            == 0
        ),
        "the kube-root-ca.crt ConfigMap",
    )
    listed = kubectl(agents, "get", "sa", "-n", namespace).stdout.splitlines()
    assert listed[0].split() == ["NAME", "SECRETS", "AGE"]
    root = json.loads(
        kubectl(agents, "get", "configmap", "kube-root-ca.crt", "-n", namespace, "-o", "json").stdout
    )
    assert root["data"]["ca.crt"].strip() == (agents.files.pki / "ca.crt").read_text().strip()


def test_a_pods_token_reads_pods_only_with_a_rolebinding(
    agents: LiveLab, namespace: str, tmp_path: Path
) -> None:
    wait_for(
        lambda: (
            kubectl(agents, "get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0
        ),
        "the default ServiceAccount",
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "sa-client", "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [
                {"name": "c", "image": CLIENT, "command": ["sh", "-c", SCRIPT], "resources": LIMITS}
            ],
        },
    }
    apply(agents, pod)
    made = wait_phase(agents, namespace, "sa-client", ("Running",))
    assert made["spec"]["serviceAccountName"] == "default"
    wait_for(
        lambda: "API OPEN" in logs(agents, namespace, "sa-client"), "the pod to reach the kubernetes Service"
    )
    lines = logs(agents, namespace, "sa-client")
    token = lines[0]
    assert lines[1] == f"NS {namespace}"
    assert "CA OK" in lines
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == f"system:serviceaccount:{namespace}:default"
    assert claims["kubernetes.io"]["pod"]["uid"] == made["metadata"]["uid"]

    config = token_kubeconfig(agents, tmp_path / "sa.kubeconfig", token)
    code, said = as_token(config, "get", "pods", "-n", namespace)
    assert code != 0
    assert (
        f'pods is forbidden: User "system:serviceaccount:{namespace}:default" cannot list resource "pods" '
        f'in API group "" in the namespace "{namespace}"'
    ) in said
    kubectl(
        agents, "create", "rolebinding", "sa-view", "--clusterrole=view",
        f"--serviceaccount={namespace}:default", "-n", namespace,
    )  # fmt: skip
    wait_for(lambda: as_token(config, "get", "pods", "-n", namespace)[0] == 0, "the RoleBinding to apply")
    code, said = as_token(config, "get", "pods", "-n", namespace, "-o", "name")
    assert "pod/sa-client" in said.split()
    code, said = as_token(config, "delete", "pod", "sa-client", "-n", namespace, "--wait=false")
    assert code != 0
    assert "forbidden" in said
    code, said = as_token(config, "auth", "can-i", "list", "pods", "-n", namespace)
    assert said.strip().splitlines()[-1] == "yes"

    kubectl(agents, "delete", "pod", "sa-client", "-n", namespace, "--wait=true", "--timeout=300s")
    wait_for(
        lambda: "Unauthorized" in as_token(config, "get", "pods", "-n", namespace)[1],
        "the deleted pod's token to be refused",
    )


def test_kubectl_create_token_works(agents: LiveLab, namespace: str, tmp_path: Path) -> None:
    wait_for(
        lambda: (
            kubectl(agents, "get", "serviceaccount", "default", "-n", namespace, check=False).returncode == 0
        ),
        "the default ServiceAccount",
    )
    token = kubectl(agents, "create", "token", "default", "-n", namespace, "--duration=10m").stdout.strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 600
    config = token_kubeconfig(agents, tmp_path / "created.kubeconfig", token)
    code, said = as_token(config, "get", "secrets", "-n", namespace)
    assert code != 0
    assert f'User "system:serviceaccount:{namespace}:default" cannot list resource "secrets"' in said
