"""ServiceAccounts against the REAL nestlab-apiserver (3-member etcd) started with a service-account
signing key: the ServiceAccount admission plugin, TokenRequest, bound tokens verified as bearer
tokens (RBAC decides what they may do, upstream semantics), revocation by deleting the pod, the
NodeRestriction rules for a node's token requests, and the ServiceAccounts controller (in-process,
on the real API) keeping ``default`` and ``kube-root-ca.crt`` in every namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import satokens
from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from nestlab.api.status import ApiError
from nestlab.controller import serviceaccounts
from nestlab.controller.manager import Term
from nestlab.runtime import proc
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    NEW_KUBECTLS,
    NODE_TOKEN,
    ApiServer,
    EtcdMember,
    Pki,
    service_account_apiserver,
    wait_until,
    write_kubeconfig,
)

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def sa_api(pki: Pki, etcd_cluster: list[EtcdMember]) -> Iterator[ApiServer]:
    with service_account_apiserver(pki, etcd_cluster, "nestlab-sa-") as server:
        yield server


@pytest.fixture
def namespace(sa_api: ApiServer) -> Iterator[str]:
    """A fresh namespace with its ``default`` ServiceAccount (no controller runs in these tests)."""
    name = f"sa-{uuid.uuid4().hex[:8]}"
    assert sa_api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})[0] == 201
    code, _ = sa_api.request(
        "POST", f"/api/v1/namespaces/{name}/serviceaccounts", {"metadata": {"name": "default"}}
    )
    assert code == 201
    yield name
    sa_api.request("DELETE", f"/api/v1/namespaces/{name}")


def make_pod(api: ApiServer, namespace: str, name: str, **spec: Any) -> Obj:
    body = {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}
    code, pod = api.request("POST", f"/api/v1/namespaces/{namespace}/pods", body)
    assert code == 201, pod
    return dict(pod)


def request_token(
    api: ApiServer, namespace: str, pod: Obj | None, *, token: str | None = None
) -> tuple[int, Any]:
    spec: Obj = {}
    if pod is not None:
        ref = {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod["metadata"]["name"],
            "uid": pod["metadata"]["uid"],
        }
        spec["boundObjectRef"] = ref
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token"
    if token is None:
        return api.request("POST", path, body)
    return api.request("POST", path, body, token=token)


def test_discovery_lists_serviceaccounts_and_their_token_subresource(sa_api: ApiServer) -> None:
    code, listing = sa_api.request("GET", "/api/v1")
    assert code == 200
    by_name = {r["name"]: r for r in listing["resources"]}
    assert by_name["serviceaccounts"]["shortNames"] == ["sa"]
    token = by_name["serviceaccounts/token"]
    assert (token["kind"], token["group"], token["version"], token["verbs"]) == (
        "TokenRequest",
        "authentication.k8s.io",
        "v1",
        ["create"],
    )


def test_pods_get_their_account_and_a_projected_token_volume(sa_api: ApiServer, namespace: str) -> None:
    pod = make_pod(sa_api, namespace, "web")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == "default"
    (volume,) = spec["volumes"]
    assert volume["name"].startswith("kube-api-access-")
    assert volume["projected"]["sources"][0]["serviceAccountToken"] == {
        "expirationSeconds": 3607,
        "path": "token",
    }
    mount = spec["containers"][0]["volumeMounts"][0]
    assert mount == {
        "name": volume["name"],
        "readOnly": True,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
    }
    opted_out = make_pod(sa_api, namespace, "quiet", automountServiceAccountToken=False)
    assert not opted_out["spec"].get("volumes")
    code, refused = sa_api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/pods",
        {
            "metadata": {"name": "lost"},
            "spec": {"serviceAccountName": "builder", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    assert (code, refused["message"]) == (
        403,
        f'pods "lost" is forbidden: error looking up service account {namespace}/builder: '
        'serviceaccount "builder" not found',
    )


def test_a_bound_token_is_a_user_rbac_decides_for_and_dies_with_its_pod(
    sa_api: ApiServer, namespace: str
) -> None:
    pod = make_pod(sa_api, namespace, "client")
    code, answer = request_token(sa_api, namespace, pod)
    assert code == 201, answer
    assert answer["kind"] == "TokenRequest"
    assert answer["spec"]["expirationSeconds"] == 3600
    token = answer["status"]["token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == satokens.ISSUER
    assert claims["aud"] == [satokens.ISSUER]
    assert claims["kubernetes.io"]["pod"] == {"name": "client", "uid": pod["metadata"]["uid"]}
    user = f"system:serviceaccount:{namespace}:default"
    pods = f"/api/v1/namespaces/{namespace}/pods"
    code, denied = sa_api.request("GET", pods, token=token)
    assert (code, denied["message"]) == (
        403,
        f'pods is forbidden: User "{user}" cannot list resource "pods" in API group "" in the namespace "{namespace}"',
    )
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "sa-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }
    code, made = sa_api.request(
        "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings", binding
    )
    assert code == 201, made
    wait_until(
        lambda: sa_api.request("GET", pods, token=token)[0] == 200, "the RoleBinding to apply", timeout=20
    )
    code, listed = sa_api.request("GET", pods, token=token)
    assert {p["metadata"]["name"] for p in listed["items"]} == {"client"}
    assert sa_api.request("POST", pods, {"metadata": {"name": "x"}}, token=token)[0] == 403  # view: no create
    assert sa_api.request("GET", "/api/v1/namespaces/default/pods", token=token)[0] == 403  # other namespace

    assert sa_api.request("DELETE", f"{pods}/client")[0] == 200  # unbound: deleted at once
    wait_until(lambda: sa_api.request("GET", f"{pods}/client")[0] == 404, "the pod to go")
    code, gone = sa_api.request("GET", pods, token=token)
    assert (code, gone["message"]) == (401, "Unauthorized")


def test_forged_and_foreign_tokens_are_refused(sa_api: ApiServer, namespace: str) -> None:
    code, answer = request_token(sa_api, namespace, None)  # unbound, as `kubectl create token`
    assert code == 201
    token = answer["status"]["token"]
    assert sa_api.request("GET", "/api/v1/namespaces", token=token)[0] == 403  # authenticated, not allowed
    claims = jwt.decode(token, options={"verify_signature": False})
    other = ec.generate_private_key(ec.SECP256R1())
    forged = [
        jwt.encode(claims, other, algorithm="ES256"),
        jwt.encode(claims, None, algorithm="none"),  # type: ignore[arg-type]
        jwt.encode({**claims, "exp": int(time.time()) - 3600}, other, algorithm="ES256"),
        token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"),
    ]
    for bad in forged:
        code, refused = sa_api.request("GET", "/api/v1/namespaces", token=bad)
        assert (code, refused["message"]) == (401, "Unauthorized")
    code, short = sa_api.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/serviceaccounts/default/token",
        {"kind": "TokenRequest", "spec": {"expirationSeconds": 60}},
    )
    assert code == 422
    assert "may not specify a duration less than 10 minutes" in short["message"]


def test_a_node_gets_tokens_only_for_its_own_pods(sa_api: ApiServer, namespace: str) -> None:
    mine = make_pod(sa_api, namespace, "mine", nodeName="esx-07")
    theirs = make_pod(sa_api, namespace, "theirs", nodeName="esx-08")
    code, answer = request_token(sa_api, namespace, mine, token=NODE_TOKEN)
    assert code == 201, answer
    code, refused = request_token(sa_api, namespace, theirs, token=NODE_TOKEN)
    assert (code, refused["message"]) == (
        403,
        'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a different node',
    )
    code, unbound = request_token(sa_api, namespace, None, token=NODE_TOKEN)
    assert (code, unbound["message"]) == (
        403,
        'serviceaccounts "default" is forbidden: node requested token not bound to a pod',
    )
    for name in ("mine", "theirs"):
        sa_api.request("DELETE", f"/api/v1/namespaces/{namespace}/pods/{name}?gracePeriodSeconds=0")


def test_the_controller_keeps_a_default_account_and_the_root_ca_in_every_namespace(sa_api: ApiServer) -> None:
    name = f"sa-ctl-{uuid.uuid4().hex[:6]}"
    ca_pem = sa_api.pki.ca.read_text()

    async def scenario() -> None:
        client = ApiClient(Credentials(sa_api.url, sa_api.pki.ca, ADMIN_TOKEN))
        term = Term(client, [serviceaccounts.factory(sa_api.pki.ca)])
        term.start()
        try:
            await client.create(NAMESPACES, "", {"metadata": {"name": name}})
            account = await eventually(lambda: client.get(SERVICEACCOUNTS, name, "default"))
            root = await eventually(lambda: client.get(CONFIGMAPS, name, "kube-root-ca.crt"))
            assert root["data"] == {"ca.crt": ca_pem}
            await client.delete(SERVICEACCOUNTS, name, "default")
            again = await eventually(lambda: client.get(SERVICEACCOUNTS, name, "default"))
            assert again["metadata"]["uid"] != account["metadata"]["uid"]
            await client.replace(CONFIGMAPS, name, {**root, "data": {"ca.crt": "tampered"}})
            await eventually(lambda: expect_ca(client, name, ca_pem))
            await client.delete(CONFIGMAPS, name, "kube-root-ca.crt")
            await eventually(lambda: expect_ca(client, name, ca_pem))
        finally:
            await term.stop()
            with contextlib.suppress(ApiError):
                await client.delete(NAMESPACES, "", name)
            await client.close()

    asyncio.run(scenario())


async def expect_ca(client: ApiClient, namespace: str, ca_pem: str) -> Obj:
    root = await client.get(CONFIGMAPS, namespace, "kube-root-ca.crt")
    if root["data"] != {"ca.crt": ca_pem}:
        raise ApiError(409, "Conflict", "not put back yet")
    return root


async def eventually(read: Callable[[], Awaitable[Obj]], timeout: float = 30.0) -> Obj:
    """``read()`` once it stops raising ApiError (404 before the controller wrote it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await read()
        except ApiError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


@pytest.mark.skipif(not NEW_KUBECTLS["1.33"].exists(), reason="kubectl 1.33 is not on this machine")
def test_kubectl_lists_accounts_and_creates_tokens(sa_api: ApiServer, namespace: str, tmp_path: Path) -> None:
    config = write_kubeconfig(tmp_path / "admin.kubeconfig", sa_api, token=ADMIN_TOKEN)

    def kubectl(*args: str) -> str:
        argv = [str(NEW_KUBECTLS["1.33"]), "--kubeconfig", str(config), "-n", namespace, *args]
        return proc.run(argv, timeout=60).stdout

    listed = kubectl("get", "sa").splitlines()
    assert listed[0].split() == ["NAME", "SECRETS", "AGE"]
    assert listed[1].split()[:2] == ["default", "0"]
    token = kubectl("create", "token", "default", "--duration=15m").strip()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    assert "kubernetes.io" in claims
    code, refused = sa_api.request("GET", f"/api/v1/namespaces/{namespace}/secrets", token=token)
    assert code == 403
    assert f'User "system:serviceaccount:{namespace}:default"' in refused["message"]


def test_image_pull_secrets_are_refused_unless_empty(sa_api: ApiServer, namespace: str) -> None:
    accounts = f"/api/v1/namespaces/{namespace}/serviceaccounts"
    code, refused = sa_api.request(
        "POST", accounts, {"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "regcred"}]}
    )
    assert code == 422, refused
    assert refused["details"]["causes"][0]["field"] == "imagePullSecrets"
    assert "credentials are handled by the node agent" in refused["message"]
    code, made = sa_api.request("POST", accounts, {"metadata": {"name": "puller"}, "imagePullSecrets": []})
    assert code == 201, made
    code, patched = sa_api.request(
        "PATCH",
        f"{accounts}/puller",
        {"imagePullSecrets": [{"name": "regcred"}]},
        content_type="application/merge-patch+json",
    )
    assert code == 422, patched
    code, default = sa_api.request("GET", f"{accounts}/default")
    assert code == 200
    assert not default.get("imagePullSecrets")
