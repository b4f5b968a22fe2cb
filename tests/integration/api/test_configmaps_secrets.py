"""ConfigMaps and Secrets through REAL kubectl (1.20 and 1.33), Secrets encrypted at rest in REAL etcd.

The session API server runs with ``--encryption-provider-config`` (conftest: aesgcm key ``key1``,
then identity), as a lab's do. kubectl 1.33 sends ``create configmap|secret`` as protobuf, 1.20
as JSON: both must give the same objects, tables, descriptions and refusals; etcdctl reading a
Secret's key must show upstream's ``k8s:enc:aesgcm:v1:key1:`` prefix and no plaintext.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    NEW_KUBECTLS,
    NODE_TOKEN,
    ApiServer,
    EtcdMember,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration
KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
    "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)
PASSWORD = "hunter2-do-not-store-me"  # noqa: S105 - the plaintext that must never reach etcd
GENERATIONS = ["1.20", *(["1.33"] if NEW_KUBECTLS["1.33"].exists() else [])]


class Kubectl:
    """One kubectl binary with an admin kubeconfig; ``kubectl(...)`` runs it."""

    def __init__(self, binary: Path, version: str, home: Path, config: Path) -> None:
        self.version = version
        self.binary = binary
        # kubectl edit writes its temp file under TMPDIR and runs KUBE_EDITOR through sh -c.
        self.env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(home),
            "KUBECONFIG": str(config),
            "TMPDIR": str(home),
        }

    def __call__(self, *args: str, check: bool = True, env: dict[str, str] | None = None) -> proc.Result:
        return proc.run([str(self.binary), *args], timeout=60, check=check, env={**self.env, **(env or {})})


@pytest.fixture(params=GENERATIONS)
def kubectl(
    request: pytest.FixtureRequest, kubectl_120: Path, apiserver: ApiServer, tmp_path: Path
) -> Kubectl:
    binary = kubectl_120 if request.param == "1.20" else NEW_KUBECTLS[request.param]
    config = write_kubeconfig(tmp_path / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    return Kubectl(binary, request.param, tmp_path, config)


@pytest.fixture
def namespace(request: pytest.FixtureRequest, kubectl: Kubectl, apiserver: ApiServer) -> Iterator[str]:
    """A namespace of its own per test and kubectl (a deleted one stays Terminating for a while)."""
    test = request.node.originalname.removeprefix("test_").replace("_", "-")[:36].rstrip("-")
    params = re.sub(r"[^a-z0-9]+", "-", request.node.callspec.id.lower())
    name = f"{test}-{params}"[:63].rstrip("-")
    code, body = apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert code == 201, body
    yield name
    apiserver.request("DELETE", f"/api/v1/namespaces/{name}")


def etcd_value(etcd_cluster: list[EtcdMember], key: str) -> bytes:
    """The raw stored value of ``key``, read with the real etcdctl (JSON output: values in base64)."""
    result = proc.run(
        ["etcdctl", "--endpoints", etcd_cluster[0].client_url, "get", key, "-w", "json"], timeout=30
    )
    kvs = json.loads(result.stdout).get("kvs") or []
    assert kvs, f"etcd has no key {key}"
    return base64.b64decode(kvs[0]["value"])


def test_configmaps_with_kubectl(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    ns = namespace
    settings = tmp_path / "app.properties"
    settings.write_text("color=blue\nsize=3\n")
    created = kubectl(
        "create", "configmap", "app", "-n", ns, "--from-literal=mode=fast", f"--from-file={settings}"
    )
    assert "configmap/app created" in created.stdout
    table = kubectl("get", "configmaps", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert table[1].split()[:2] == ["app", "2"]
    assert kubectl("get", "cm", "app", "-n", ns, "-o", "jsonpath={.data.mode}").stdout == "fast"
    document = json.loads(kubectl("get", "cm", "app", "-n", ns, "-o", "json").stdout)
    assert document["data"] == {"mode": "fast", "app.properties": "color=blue\nsize=3\n"}
    assert "mode: fast" in kubectl("get", "cm", "app", "-n", ns, "-o", "yaml").stdout
    described = kubectl("describe", "configmap", "app", "-n", ns).stdout
    assert "mode:" in described
    assert "fast" in described
    assert "color=blue" in described


def test_configmap_refusals(kubectl: Kubectl, namespace: str, apiserver: ApiServer, tmp_path: Path) -> None:
    ns = namespace
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bad, namespace: {ns}}}\ndata: {{'bad key': x}}\n"
    )
    refused = kubectl("create", "-f", str(bad), check=False)
    assert refused.returncode != 0
    assert (
        f'The ConfigMap "bad" is invalid: data[bad key]: Invalid value: "bad key": {KEY_MSG}'
        in refused.stderr
    )

    big = tmp_path / "big.txt"
    big.write_text("x" * (1024 * 1024 + 1))
    too_big = kubectl("create", "configmap", "big", "-n", ns, f"--from-file={big}", check=False)
    assert too_big.returncode != 0
    assert 'ConfigMap "big" is invalid: []: Too long: must have at most 1048576 bytes' in too_big.stderr
    body = {"metadata": {"name": "big"}, "data": {"big.txt": "x" * (1024 * 1024 + 1)}}
    code, status = apiserver.request("POST", f"/api/v1/namespaces/{ns}/configmaps", body)
    assert code == 422, status
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"] == [
        {"reason": "FieldValueTooLong", "message": "Too long: must have at most 1048576 bytes", "field": "[]"}
    ]
    exact = {"metadata": {"name": "exact"}, "data": {"big.txt": "x" * (1024 * 1024)}}
    assert apiserver.request("POST", f"/api/v1/namespaces/{ns}/configmaps", exact)[0] == 201


def test_immutable_configmap_refuses_edit(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    ns = namespace
    frozen = tmp_path / "frozen.yaml"
    frozen.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: frozen, namespace: {ns}}}\n"
                      "data: {level: chilled}\nimmutable: true\n")  # fmt: skip
    assert "configmap/frozen created" in kubectl("create", "-f", str(frozen)).stdout
    edited = kubectl(
        "edit",
        "configmap",
        "frozen",
        "-n",
        ns,
        check=False,
        env={"KUBE_EDITOR": "sed -i -e s/chilled/thawed/"},
    )
    assert edited.returncode != 0
    assert 'configmaps "frozen" is invalid' in edited.stderr
    # kubectl edit writes the causes as comments into the copy of the edit it keeps
    copy = Path(re.search(r'stored to "([^"]+)"', edited.stderr)[1])  # type: ignore[index]
    assert "data: Forbidden: field is immutable when `immutable` is set" in copy.read_text()
    patched = kubectl("patch", "configmap", "frozen", "-n", ns, "-p", '{"immutable": false}', check=False)
    assert "immutable: Forbidden: field is immutable when `immutable` is set" in patched.stderr
    labelled = kubectl("label", "configmap", "frozen", "-n", ns, "tier=gold")
    assert "labeled" in labelled.stdout  # metadata may still change
    assert kubectl("get", "cm", "frozen", "-n", ns, "-o", "jsonpath={.data.level}").stdout == "chilled"


def test_secrets_with_kubectl_encrypted_in_etcd(
    kubectl: Kubectl, namespace: str, apiserver: ApiServer, etcd_cluster: list[EtcdMember], tmp_path: Path
) -> None:
    ns = namespace
    token = tmp_path / "token"
    token.write_text("s3cr3t-token\n")
    created = kubectl(
        "create",
        "secret",
        "generic",
        "db",
        "-n",
        ns,
        f"--from-literal=password={PASSWORD}",
        f"--from-file={token}",
    )
    assert "secret/db created" in created.stdout
    table = kubectl("get", "secrets", "-n", ns).stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table[1].split()[:3] == ["db", "Opaque", "2"]
    encoded = kubectl("get", "secret", "db", "-n", ns, "-o", "jsonpath={.data.password}").stdout
    assert base64.b64decode(encoded).decode() == PASSWORD
    as_yaml = kubectl("get", "secret", "db", "-n", ns, "-o", "yaml").stdout
    assert "type: Opaque" in as_yaml
    assert "stringData" not in as_yaml
    described = kubectl("describe", "secret", "db", "-n", ns).stdout
    assert f"password:  {len(PASSWORD)} bytes" in described
    assert PASSWORD not in described

    stored = etcd_value(etcd_cluster, f"/registry/secrets/{ns}/db")
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert PASSWORD.encode() not in stored
    assert base64.b64encode(PASSWORD.encode()) not in stored
    assert b"s3cr3t-token" not in stored
    plain = etcd_value(etcd_cluster, f"/registry/namespaces/{ns}")
    assert json.loads(plain)["metadata"]["name"] == ns  # only Secrets are encrypted

    tls = kubectl(
        "create", "secret", "tls", "web", "-n", ns, f"--cert={apiserver.pki.server_cert}",
        f"--key={apiserver.pki.server_key}",
    )  # fmt: skip
    assert "secret/web created" in tls.stdout
    by_type = kubectl("get", "secrets", "-n", ns, "--field-selector", "type=kubernetes.io/tls").stdout
    assert [line.split()[0] for line in by_type.splitlines()[1:]] == ["web"]
    assert by_type.splitlines()[1].split()[1:3] == ["kubernetes.io/tls", "2"]


def test_secret_refusals(kubectl: Kubectl, namespace: str, tmp_path: Path) -> None:
    ns = namespace
    tls = tmp_path / "tls.yaml"
    tls.write_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: half, namespace: {ns}}}\n"
                   "type: kubernetes.io/tls\nstringData: {tls.crt: x}\n")  # fmt: skip
    refused = kubectl("create", "-f", str(tls), check=False)
    assert 'The Secret "half" is invalid: data[tls.key]: Required value' in refused.stderr
    kubectl("create", "secret", "generic", "frozen", "-n", ns, "--from-literal=a=1")
    kubectl("patch", "secret", "frozen", "-n", ns, "-p", '{"immutable": true}')
    changed = kubectl("patch", "secret", "frozen", "-n", ns, "-p", '{"stringData": {"a": "2"}}', check=False)
    assert "data: Forbidden: field is immutable when `immutable` is set" in changed.stderr
    retyped = kubectl(
        "patch", "secret", "frozen", "-n", ns, "-p", '{"type": "kubernetes.io/basic-auth"}', check=False
    )
    assert 'type: Invalid value: "kubernetes.io/basic-auth": field is immutable' in retyped.stderr


def test_values_stored_before_encryption_still_read(
    apiserver: ApiServer, etcd_cluster: list[EtcdMember], tmp_path: Path
) -> None:
    """A Secret written in plain JSON (by a server without the flag) reads through identity."""
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": "cs-plain"}})[0] == 201
    try:
        old = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
               "metadata": {"name": "old", "namespace": "cs-plain", "uid": "0000-old",
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "data": {"k": base64.b64encode(b"from-before").decode()}}  # fmt: skip
        put = ["etcdctl", "--endpoints", etcd_cluster[0].client_url, "put", "/registry/secrets/cs-plain/old"]
        proc.run(put, timeout=30, stdin=json.dumps(old))
        code, body = apiserver.request("GET", "/api/v1/namespaces/cs-plain/secrets/old")
        assert code == 200, body
        assert base64.b64decode(body["data"]["k"]) == b"from-before"
        code, body = apiserver.request(
            "PATCH", "/api/v1/namespaces/cs-plain/secrets/old", {"metadata": {"labels": {"rewritten": "yes"}}},
            content_type="application/merge-patch+json",
        )  # fmt: skip
        assert code == 200, body
        assert etcd_value(etcd_cluster, "/registry/secrets/cs-plain/old").startswith(
            b"k8s:enc:aesgcm:v1:key1:"
        )
    finally:
        apiserver.request("DELETE", "/api/v1/namespaces/cs-plain")


def test_who_may_read_secrets(apiserver: ApiServer) -> None:
    """view reads ConfigMaps but not Secrets (upstream); node agents read both; nobody else writes."""
    ns = "cs-roles"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        for plural, body in (("configmaps", {"data": {"a": "1"}}), ("secrets", {"stringData": {"a": "1"}})):
            code, created = apiserver.request(
                "POST", f"/api/v1/namespaces/{ns}/{plural}", {"metadata": {"name": "x"}, **body}
            )
            assert code == 201, created
        binding = {
            "metadata": {"name": "devs-view"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}],
        }
        code, body = apiserver.request(
            "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", binding
        )
        assert code == 201, body
        carol = apiserver.context(apiserver.pki.carol_cert, apiserver.pki.carol_key)
        assert (
            apiserver.request("GET", f"/api/v1/namespaces/{ns}/configmaps/x", token=None, context=carol)[0]
            == 200
        )
        code, body = apiserver.request("GET", f"/api/v1/namespaces/{ns}/secrets/x", token=None, context=carol)
        assert (code, body["message"]) == (
            403,
            f'secrets "x" is forbidden: User "carol" cannot get resource "secrets" in API group "" in the namespace "{ns}"',
        )
        # A node agent reads them only once a pod bound to its node names them (the Node authorizer).
        code, body = apiserver.request("GET", f"/api/v1/namespaces/{ns}/secrets/x", token=NODE_TOKEN)
        assert code == 403, body
        assert "no relationship found between node 'esx-07' and this object" in body["message"]
        container = {"name": "c", "image": "busybox:1.36", "envFrom": [{"configMapRef": {"name": "x"}}]}
        pod = {
            "metadata": {"name": "reader"},
            "spec": {
                "nodeName": "esx-07",
                "automountServiceAccountToken": False,
                "containers": [container],
                "volumes": [{"name": "s", "secret": {"secretName": "x"}}],
            },
        }
        apiserver.request(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "default"}}
        )
        code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", pod)
        assert code == 201, body
        for plural in ("configmaps", "secrets"):
            assert apiserver.request("GET", f"/api/v1/namespaces/{ns}/{plural}/x", token=NODE_TOKEN)[0] == 200
            assert (
                apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/{plural}/x", token=NODE_TOKEN)[0] == 403
            )
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/pods/reader?gracePeriodSeconds=0")
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read encryption provider config {path}: No such file or directory"),
        ("kind: EncryptionConfiguration\n", "encryption provider config {path}: kind: expected apiVersion"),
    ],
)
def test_a_missing_or_wrong_config_stops_the_server_naming_the_file(
    etcd_cluster: list[EtcdMember], tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "encryption-config.yaml"
    if content is not None:
        path.write_text(content)
    argv = [sys.executable, "-m", "nestlab.api.main", "--etcd-servers", etcd_cluster[0].client_url,
            "--bind", "127.0.0.1", "--port", "0", "--encryption-provider-config", str(path)]  # fmt: skip
    result = proc.run(argv, timeout=60, check=False)
    assert result.returncode == 2
    assert message.format(path=path) in result.stderr


def test_secret_size_limit_counts_decoded_bytes(apiserver: ApiServer, etcd_cluster: list[EtcdMember]) -> None:
    """1 MiB of data (1.4 MB of base64, encrypted) is stored; one byte more is a 422 on ``data``."""
    ns = "cs-size"
    assert apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
    try:
        limit = 1024 * 1024
        exact = {"metadata": {"name": "exact"}, "data": {"blob": base64.b64encode(b"\1" * limit).decode()}}
        code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/secrets", exact)
        assert code == 201, body
        assert etcd_value(etcd_cluster, f"/registry/secrets/{ns}/exact").startswith(
            b"k8s:enc:aesgcm:v1:key1:"
        )
        over = {
            "metadata": {"name": "over"},
            "data": {"blob": base64.b64encode(b"\1" * (limit + 1)).decode()},
        }
        code, body = apiserver.request("POST", f"/api/v1/namespaces/{ns}/secrets", over)
        assert code == 422, body
        assert body["message"] == 'Secret "over" is invalid: data: Too long: must have at most 1048576 bytes'
    finally:
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


@pytest.mark.parametrize("server_side", [False, True], ids=["client-side", "server-side"])
def test_apply_secret_with_string_data(
    kubectl: Kubectl, namespace: str, tmp_path: Path, server_side: bool
) -> None:
    """``kubectl apply`` twice: stringData lands in data both times and is never stored itself."""
    ns = namespace
    manifest = tmp_path / "secret.yaml"
    flags = ["--server-side"] if server_side else []
    for value in ("first", "second"):
        manifest.write_text(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: applied, namespace: {ns}}}\n"
                            f"stringData: {{token: {value}}}\n")  # fmt: skip
        kubectl("apply", *flags, "-f", str(manifest))
        stored = json.loads(kubectl("get", "secret", "applied", "-n", ns, "-o", "json").stdout)
        assert base64.b64decode(stored["data"]["token"]).decode() == value
        assert "stringData" not in stored
    kubectl("delete", "secret", "applied", "-n", ns)
