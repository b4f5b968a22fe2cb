"""Tenancy on the shared lab, as issue 14 asks a vSphere administrator would see it (docs/tenancy.md
walks the same steps): `nestlab namespace create team-a --cpu 2 --memory 4Gi --edit alice --view bob`;
alice logs in (a per-user kubeconfig with the exec credential plugin) and deploys in team-a; bob
reads but gets upstream's 403 on write; neither sees team-b; the quota refusal names its limit;
expired and forged tokens get 401; a service-account token lists pods only once a RoleBinding
allows it; `nestlab audit --user alice` shows her create; an image alice pushes to team-a's
project runs in a team-a pod while a team-b pod cannot pull it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import secrets
import ssl
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.agent.registry import MANIFEST_TYPES
from nestlab.images import oci
from nestlab.runtime import disks, proc
from tests.e2e.conftest import COMMAND_TIMEOUT_S, LiveLab
from tests.e2e.labtools import POD_TIMEOUT_S, REGISTRY, get_json, kubectl, plan, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.root]
Obj = dict[str, Any]
USERS = ("alice", "bob", "carol")
TEAM_A, TEAM_B = "team-a", "team-b"
WEB = f"{REGISTRY}/nestlab/web:1"
SMALL = {"memory": "64Mi"}  # a 96 MiB guest; the cpu limit comes from the namespace's LimitRange
ISSUER, AUDIENCE = "nestlab-identity", "nestlab-apiserver"  # TENANCY.md's login token claims


@dataclass(frozen=True)
class Tenants:
    """The lab with users alice, bob, carol and the vSphere Namespaces team-a and team-b."""

    lab: LiveLab
    passwords: dict[str, str]


def run_nestlab(*args: str, stdin: str | None = None, check: bool = True) -> proc.Result:
    """The real ``nestlab`` command of this venv (with standard input, unlike conftest's helper)."""
    command = [str(Path(sys.executable).parent / "nestlab"), *args]
    return proc.run(command, timeout=COMMAND_TIMEOUT_S, check=check, stdin=stdin)


def user_kubeconfig(lab: LiveLab, user: str) -> Path:
    """What ``nestlab login USER`` writes (TENANCY.md: <lab dir>/users/<user>.kubeconfig)."""
    return lab.files.root / "users" / f"{user}.kubeconfig"


def as_user(lab: LiveLab, user: str, *args: str, stdin: str | None = None, check: bool = True) -> proc.Result:
    """kubectl with the user's own kubeconfig (its exec plugin runs `nestlab credential`)."""
    argv = ["kubectl", "--kubeconfig", str(user_kubeconfig(lab, user)), "--request-timeout=20s", *args]
    return proc.run(argv, timeout=POD_TIMEOUT_S, check=check, stdin=stdin)


def refused(result: proc.Result, message: str) -> None:
    """A command that failed with ``message`` and no traceback."""
    assert result.returncode != 0, result.stdout
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def api_code(lab: LiveLab, token: str, path: str = f"/api/v1/namespaces/{TEAM_A}/pods") -> tuple[int, Obj]:
    """(HTTP status, body) of a GET through the VIP with ``token`` as the bearer token."""
    context = ssl.create_default_context(cafile=str(lab.files.pki / "ca.crt"))
    conn = http.client.HTTPSConnection(str(plan(lab)["vip"]), 6443, context=context, timeout=20)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}", "Accept": "application/json"})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"raw": raw.decode(errors="replace")}
    return response.status, body


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def claims(user: str, *, expires_in: int = 600, issued_ago: int = 0) -> Obj:
    now = int(time.time()) - issued_ago
    return {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "groups": [],
        "iat": now,
        "nbf": now,
        "exp": now + expires_in,
        "jti": uuid.uuid4().hex,
    }


@pytest.fixture(scope="module")
def tenants(agents: LiveLab) -> Iterator[Tenants]:
    """Three users, team-a (alice edit, bob view, 2 CPUs, 4Gi) and team-b (carol edit); alice and bob
    logged in. Everything is removed at the end, also when a test fails."""
    lab = agents
    passwords = {user: secrets.token_urlsafe(18) for user in USERS}
    try:
        for user in USERS:
            added = run_nestlab(
                "user", "add", user, "--password-stdin", "--lab", lab.name, stdin=passwords[user], check=False
            )
            assert added.returncode == 0 or f"user {user} exists" in added.stderr, added.stderr
            if added.returncode != 0:  # kept from an earlier run: give it this run's password
                run_nestlab("user", "remove", user, "--lab", lab.name)
                run_nestlab("user", "add", user, "--password-stdin", "--lab", lab.name, stdin=passwords[user])
        made = run_nestlab(
            "namespace", "create", TEAM_A, "--cpu", "2", "--memory", "4Gi", "--edit", "alice", "--view", "bob",
            "--name", lab.name,
        )  # fmt: skip
        assert f"created namespace {TEAM_A}" in made.stdout or "unchanged" in made.stdout
        run_nestlab("namespace", "create", TEAM_B, "--edit", "carol", "--name", lab.name)
        for user in ("alice", "bob"):
            run_nestlab("login", user, "--password-stdin", "--lab", lab.name, stdin=passwords[user])
        yield Tenants(lab, passwords)
    finally:
        for namespace in (TEAM_A, TEAM_B):
            run_nestlab("namespace", "delete", namespace, "--name", lab.name, check=False)
        for user in USERS:
            run_nestlab("user", "remove", user, "--lab", lab.name, check=False)


def web_deployment(name: str) -> Obj:
    container = {
        "name": "web",
        "image": WEB,
        "command": ["httpd", "-f", "-p", "80", "-h", "/www"],
        "resources": {"limits": SMALL},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [container]}},
        },
    }


@pytest.fixture(scope="module")
def alice_web(tenants: Tenants) -> str:
    """Alice's Deployment ``web`` in team-a, with one ready replica (created with her own login)."""
    lab = tenants.lab
    as_user(lab, "alice", "apply", "-n", TEAM_A, "-f", "-", stdin=json.dumps(web_deployment("web")))

    def ready() -> bool:
        out = as_user(lab, "alice", "get", "deployment", "web", "-n", TEAM_A, "-o", "json")
        return int((json.loads(out.stdout).get("status") or {}).get("readyReplicas") or 0) == 1

    wait_for(ready, "alice's web Deployment ready in team-a", timeout=POD_TIMEOUT_S)
    return "web"


def test_namespace_create_is_idempotent_listed_and_in_status(tenants: Tenants) -> None:
    lab = tenants.lab
    again = run_nestlab(
        "namespace", "create", TEAM_A, "--cpu", "2", "--memory", "4Gi", "--edit", "alice", "--view", "bob",
        "--name", lab.name,
    )  # fmt: skip
    assert again.stdout.strip() == f"namespace {TEAM_A} unchanged"
    quota = get_json(lab, "resourcequota", "nestlab-limits", "-n", TEAM_A)
    assert quota["spec"]["hard"] == {"limits.cpu": "2", "limits.memory": "4Gi"}
    namespace = get_json(lab, "namespace", TEAM_A)
    assert namespace["metadata"]["labels"]["nestlab.dev/vsphere-namespace"] == "true"
    assert namespace["metadata"]["labels"]["nestlab.dev/registry-project"] == TEAM_A
    assert "nestlab-defaults" in kubectl(lab, "get", "limits", "-n", TEAM_A).stdout
    row = next(
        line.split()
        for line in run_nestlab("namespace", "list", "--name", lab.name).stdout.splitlines()
        if line.startswith(f"{TEAM_A} ")
    )
    assert row[1].endswith("/2")
    assert row[2].endswith("/4Gi")
    assert row[5:7] == ["bob", "alice"]
    status = run_nestlab("status", "--name", lab.name).stdout  # needs cli.status to render the namespaces
    assert "vSphere Namespaces" in status
    assert TEAM_A in status


def test_bad_input_is_refused_clearly(tenants: Tenants) -> None:
    lab = tenants.lab
    unknown = run_nestlab(
        "namespace", "create", "team-c", "--edit", "nobody", "--name", lab.name, check=False
    )
    refused(unknown, "user 'nobody' does not exist in this lab: add it first with `nestlab user add nobody`")
    bad = run_nestlab("namespace", "create", "team-c", "--cpu", "lots", "--name", lab.name, check=False)
    refused(bad, "--cpu 'lots' is not a quantity")
    assert kubectl(lab, "get", "namespace", "team-c", check=False).returncode != 0


def test_alice_deploys_and_the_namespace_defaults_fill_her_pod(tenants: Tenants, alice_web: str) -> None:
    pods = json.loads(
        as_user(
            tenants.lab, "alice", "get", "pods", "-n", TEAM_A, "-l", f"app={alice_web}", "-o", "json"
        ).stdout
    )
    pod = pods["items"][0]
    assert pod["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "64Mi"}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"].startswith(
        "LimitRanger plugin set: cpu"
    )
    assert (
        as_user(tenants.lab, "alice", "auth", "can-i", "create", "deployments", "-n", TEAM_A).stdout.strip()
        == "yes"
    )


def test_bob_reads_but_cannot_write(tenants: Tenants, alice_web: str) -> None:
    lab = tenants.lab
    assert alice_web in as_user(lab, "bob", "get", "deployments", "-n", TEAM_A).stdout
    refused(
        as_user(lab, "bob", "create", "deployment", "mine", f"--image={WEB}", "-n", TEAM_A, check=False),
        'deployments.apps is forbidden: User "bob" cannot create resource "deployments" in API group "apps" '
        'in the namespace "team-a"',
    )
    refused(
        as_user(lab, "bob", "delete", "deployment", alice_web, "-n", TEAM_A, check=False),
        f'deployments.apps "{alice_web}" is forbidden: User "bob" cannot delete resource "deployments" in API group '
        '"apps" in the namespace "team-a"',
    )
    can = as_user(lab, "bob", "auth", "can-i", "create", "pods", "-n", TEAM_A, check=False)
    assert can.stdout.strip() == "no"
    assert (
        kubectl(
            lab, "auth", "can-i", "create", "pods", "-n", TEAM_A, "--as", "bob", check=False
        ).stdout.strip()
        == "no"
    )
    assert (
        kubectl(lab, "auth", "can-i", "create", "pods", "-n", TEAM_A, "--as", "alice").stdout.strip() == "yes"
    )


@pytest.mark.parametrize("user", ["alice", "bob"])
def test_neither_sees_team_b(tenants: Tenants, user: str) -> None:
    refused(
        as_user(tenants.lab, user, "get", "pods", "-n", TEAM_B, check=False),
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in the namespace "team-b"',
    )
    refused(
        as_user(tenants.lab, user, "get", "secrets", "-n", TEAM_B, check=False),
        f'secrets is forbidden: User "{user}" cannot list resource "secrets" in API group "" in the namespace "team-b"',
    )


def test_the_quota_refusal_names_the_limit(tenants: Tenants, alice_web: str) -> None:
    greedy = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "greedy"},
        "spec": {"containers": [{"name": "c", "image": WEB, "resources": {"limits": {"cpu": "3", **SMALL}}}]},
    }
    result = as_user(
        tenants.lab, "alice", "create", "-n", TEAM_A, "-f", "-", stdin=json.dumps(greedy), check=False
    )
    refused(
        result,
        'pods "greedy" is forbidden: exceeded quota: nestlab-limits, requested: limits.cpu=3, used: limits.cpu=',
    )
    assert "limited: limits.cpu=2" in result.stderr


def test_expired_and_forged_tokens_get_401(tenants: Tenants) -> None:
    lab = tenants.lab
    cache = (
        lab.files.root / "users" / "alice.token"
    )  # TENANCY.md: the 0600 token cache next to the kubeconfig
    assert cache.stat().st_mode & 0o077 == 0
    real = str(json.loads(cache.read_text())["token"])
    assert api_code(lab, real)[0] == 200
    header, payload, signature = real.split(".")
    altered = json.loads(unb64(payload))
    altered["sub"], altered["groups"] = "admin", ["system:masters"]
    lab_key = serialization.load_pem_private_key((lab.files.pki / "identity-signing.key").read_bytes(), None)
    assert isinstance(lab_key, ec.EllipticCurvePrivateKey)
    other_key = ec.generate_private_key(ec.SECP256R1())
    public_pem = lab_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hs_signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{payload}"
    forged = {
        "expired (real key)": jwt.encode(
            claims("alice", expires_in=60, issued_ago=3600), lab_key, algorithm="ES256"
        ),
        "other key": jwt.encode(claims("alice"), other_key, algorithm="ES256"),
        "altered claims": f"{header}.{b64(json.dumps(altered).encode())}.{signature}",
        "alg none": f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}.",
        "HS256 with the public key": f"{hs_signing_input}."
        + b64(hmac.new(public_pem, hs_signing_input.encode(), hashlib.sha256).digest()),
        "not a token": "not-a-jwt",
    }
    for what, token in forged.items():
        code, body = api_code(lab, token)
        assert (code, body.get("reason")) == (401, "Unauthorized"), what


def test_a_service_account_token_lists_pods_only_once_bound(tenants: Tenants) -> None:
    lab = tenants.lab
    kubectl(lab, "create", "serviceaccount", "robot", "-n", TEAM_A)
    try:
        token = kubectl(lab, "create", "token", "robot", "-n", TEAM_A).stdout.strip()
        code, body = api_code(lab, token)
        assert code == 403
        assert body["message"] == (
            'pods is forbidden: User "system:serviceaccount:team-a:robot" cannot list resource "pods" in API '
            'group "" in the namespace "team-a"'
        )
        run_nestlab(
            "namespace",
            "set",
            TEAM_A,
            "--view",
            "bob",
            "--view",
            "system:serviceaccount:team-a:robot",
            "--name",
            lab.name,
        )
        wait_for(lambda: api_code(lab, token)[0] == 200, "the robot's token lists team-a's pods", timeout=60)
        assert api_code(lab, token, f"/api/v1/namespaces/{TEAM_B}/pods")[0] == 403
    finally:
        run_nestlab("namespace", "set", TEAM_A, "--view", "bob", "--name", lab.name, check=False)
        kubectl(lab, "delete", "serviceaccount", "robot", "-n", TEAM_A, check=False)


def test_audit_shows_alices_create(tenants: Tenants, alice_web: str) -> None:
    lab = tenants.lab
    seen: list[str] = []

    def logged() -> bool:
        out = run_nestlab(
            "audit", "--user", "alice", "--namespace", TEAM_A, "--since", "2h", "--name", lab.name
        )
        seen[:] = [
            line for line in out.stdout.splitlines() if " create " in f" {line} " and "deployments" in line
        ]
        return any(alice_web in line and "201" in line for line in seen)

    wait_for(logged, "alice's create of deployments/web in `nestlab audit --user alice`", timeout=120)
    assert all("alice" in line for line in seen)


def oci_layout(directory: Path, marker: str) -> Path:
    """A one-layer busybox image printing ``marker`` then sleeping, as an OCI image layout."""
    root = disks.busybox_root(directory / "root", applets=("sh", "cat", "sleep"))
    (root / "marker").write_text(marker + "\n")
    layer, config, manifest = oci.build(root, oci.Recipe(cmd=("sh", "-c", "cat /marker; exec sleep 3600")))
    layout = directory / "layout"
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (layer, config, manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    entry = {
        "mediaType": MANIFEST_TYPES[0],
        "digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
        "size": len(manifest),
        "annotations": {"org.opencontainers.image.ref.name": "1"},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return layout


def hello_pod(image: str) -> Obj:
    container = {"name": "hello", "image": image, "imagePullPolicy": "Always", "resources": {"limits": SMALL}}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello"},
        "spec": {"containers": [container]},
    }


def test_an_image_pushed_to_team_a_runs_there_and_not_in_team_b(tenants: Tenants, tmp_path: Path) -> None:
    lab = tenants.lab
    marker = f"hello from team-a {uuid.uuid4().hex[:8]}"  # a new image: no node has it cached
    layout = oci_layout(tmp_path, marker)
    run_nestlab(
        "image", "push", str(layout), "--namespace", TEAM_A, "--repository", "hello", "--tag", "1",
        "--user", "alice", "--name", lab.name,
    )  # fmt: skip
    image = f"{REGISTRY}/{TEAM_A}/hello:1"
    try:
        as_user(lab, "alice", "create", "-n", TEAM_A, "-f", "-", stdin=json.dumps(hello_pod(image)))
        kubectl(lab, "create", "-n", TEAM_B, "-f", "-", stdin=json.dumps(hello_pod(image)))

        def printed() -> bool:
            out = as_user(lab, "alice", "logs", "hello", "-n", TEAM_A, check=False)
            return marker in out.stdout

        wait_for(printed, "team-a's pod runs the image alice pushed", timeout=POD_TIMEOUT_S)
        waiting: dict[str, Any] = {}

        def pull_refused() -> bool:
            pod = get_json(lab, "pod", "hello", "-n", TEAM_B)
            assert (pod.get("status") or {}).get("phase") != "Running", "team-b ran team-a's image"
            states = [s.get("state") or {} for s in (pod.get("status") or {}).get("containerStatuses") or []]
            waiting.update(next((s["waiting"] for s in states if "waiting" in s), {}))
            return waiting.get("reason") in ("ErrImagePull", "ImagePullBackOff")

        wait_for(pull_refused, "team-b's pod refused team-a's image", timeout=POD_TIMEOUT_S)
        assert marker not in kubectl(lab, "logs", "hello", "-n", TEAM_B, check=False).stdout
    finally:
        kubectl(lab, "delete", "pod", "hello", "-n", TEAM_A, "--wait=false", check=False)
        kubectl(lab, "delete", "pod", "hello", "-n", TEAM_B, "--wait=false", check=False)
