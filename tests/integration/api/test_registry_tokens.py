"""Registry projects against the REAL parts: Debian's docker-registry (distribution 2.8) on loopback with
``auth: token``, trusting a lab-PKI certificate, and the REAL nestlab-apiserver issuing its tokens.

An editor of team-a pushes to team-a's project; a viewer pulls but cannot push; nobody pulls another
namespace's project; a node pulls a private project only for a pod bound to it in that namespace; the
public ``nestlab`` project is pulled without credentials; ``docker login`` with a token as password works.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nestlab import imagepush
from nestlab.agent import images
from nestlab.agent.registry import (
    ImageNeverPullError,
    ImageNotFoundError,
    RegistryAccessDeniedError,
    RegistryClient,
    parse_ref,
)
from nestlab.agent.registryauth import TokenAuth
from nestlab.api import registrytoken
from nestlab.images import oci
from nestlab.provision.pki import ensure_registry_token_cert
from nestlab.runtime import proc
from tests.integration.agent.conftest import start_registry
from tests.integration.api.conftest import (
    ADMIN_TOKEN,
    BOB_TOKEN,
    NODE_TOKEN,
    ApiServer,
    EtcdMember,
    Pki,
    free_port,
    start_apiserver,
    wait_until,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class TokenLab:
    api: ApiServer
    registry: str
    """host:port of the docker-registry"""
    registry_log: Path


def _registry_config(storage: Path, port: int, realm: str, bundle: Path) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: info\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        "auth:\n  token:\n"
        f"    realm: {realm}\n    service: depot\n    issuer: nestlab-registry\n    rootcertbundle: {bundle}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )


def _asks_for_token(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()  # noqa: S310 - loopback test URL
    except urllib.error.HTTPError as exc:
        return exc.code == 401 and exc.headers.get("WWW-Authenticate", "").startswith("Bearer realm=")
    return False


@pytest.fixture(scope="module")
def token_lab(pki: Pki, etcd_cluster: list[EtcdMember]) -> Iterator[TokenLab]:
    directory = Path(tempfile.mkdtemp(prefix="nestlab-regtok-"))
    signer = ensure_registry_token_cert(directory / "pki", "test")
    url, api_process, api_log = start_apiserver(
        pki,
        [m.client_url for m in etcd_cluster],
        directory,
        "--registry-token-signing-key-file",
        str(signer.key),
    )
    port = free_port()
    config = directory / "registry.yml"
    config.write_text(_registry_config(directory / "storage", port, url + registrytoken.PATH, signer.cert))
    log = directory / "registry.log"
    registry = proc.spawn(["/usr/bin/docker-registry", "serve", str(config)], log=log)
    try:
        wait_until(lambda: _asks_for_token(f"http://127.0.0.1:{port}/v2/"), "docker-registry with token auth")
        api = ApiServer(url, pki, api_log, api_process)
        yield TokenLab(api, f"127.0.0.1:{port}", log)
    finally:
        registry.stop()
        api_process.stop()
        text = api_log.read_text()
        shutil.rmtree(directory, ignore_errors=True)
    assert "Traceback" not in text, text[-4000:]


def _namespace(api: ApiServer, name: str, bindings: dict[str, str]) -> None:
    code, body = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert code == 201, body
    for user, role in bindings.items():
        binding = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{user}-{role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }
        path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{name}/rolebindings"
        code, body = api.request("POST", path, binding)
        assert code == 201, body


def _pod(api: ApiServer, namespace: str, name: str, node: str) -> None:
    pod = {
        "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": f"{namespace}/web:1"}]},
    }
    code, body = api.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert code == 201, body


@dataclass(frozen=True)
class Teams:
    a: str
    b: str


@pytest.fixture(scope="module")
def teams(token_lab: TokenLab) -> Teams:
    """team-a: bob edits, carol views; team-b: nobody but admins. Each project holds web:1."""
    suffix = uuid.uuid4().hex[:6]
    teams = Teams(f"team-a-{suffix}", f"team-b-{suffix}")
    _namespace(token_lab.api, teams.a, {"bob": "edit", "carol": "view"})
    _namespace(token_lab.api, teams.b, {})
    return teams


def _client(lab: TokenLab, auth: TokenAuth | None) -> RegistryClient:
    return RegistryClient(lab.registry, auth=auth)


def _bearer(lab: TokenLab, token: str) -> TokenAuth:
    return TokenAuth(context=lab.api.context(), bearer=token)


def _push(client: RegistryClient, repository: str, root: Path) -> str:
    return oci.push(client, repository, ["1"], root, oci.Recipe(cmd=("sh",)))


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "motd").write_text(f"image {uuid.uuid4()}\n")
    return root


def test_an_editor_pushes_and_a_viewer_pulls_but_cannot_push(
    token_lab: TokenLab, teams: Teams, image_root: Path
) -> None:
    bob = _client(token_lab, _bearer(token_lab, BOB_TOKEN))
    digest = _push(bob, f"{teams.a}/web", image_root)
    carol_auth = TokenAuth.with_certificate(
        token_lab.api.pki.ca, token_lab.api.pki.carol_cert, token_lab.api.pki.carol_key
    )
    carol = _client(token_lab, carol_auth)
    assert carol.manifest(parse_ref(f"{teams.a}/web:1", token_lab.registry))[0] == digest
    (image_root / "etc" / "motd").write_text("carol was here\n")
    with pytest.raises(RegistryAccessDeniedError, match="refused these credentials"):
        _push(carol, f"{teams.a}/web", image_root)


def test_nobody_pulls_another_namespaces_project(token_lab: TokenLab, teams: Teams, image_root: Path) -> None:
    admin = _client(token_lab, _bearer(token_lab, ADMIN_TOKEN))
    _push(admin, f"{teams.b}/secret", image_root)
    bob = _client(token_lab, _bearer(token_lab, BOB_TOKEN))
    with pytest.raises(RegistryAccessDeniedError):
        bob.manifest(parse_ref(f"{teams.b}/secret:1", token_lab.registry))
    with pytest.raises(RegistryAccessDeniedError):
        _push(bob, f"{teams.b}/secret", image_root)
    with pytest.raises(RegistryAccessDeniedError):
        _client(token_lab, None).manifest(parse_ref(f"{teams.b}/secret:1", token_lab.registry))


def test_a_node_pulls_a_private_project_only_for_its_pod(
    token_lab: TokenLab, teams: Teams, image_root: Path
) -> None:
    admin = _client(token_lab, _bearer(token_lab, ADMIN_TOKEN))
    _push(admin, f"{teams.a}/app", image_root)
    _push(admin, f"{teams.b}/app", image_root)
    _pod(token_lab.api, teams.a, "mine", "esx-07")
    _pod(token_lab.api, teams.a, "elsewhere", "esx-01")
    node = _client(token_lab, _bearer(token_lab, NODE_TOKEN))
    ref_a = parse_ref(f"{teams.a}/app:1", token_lab.registry)
    assert node.for_pod(f"{teams.a}/mine").manifest(ref_a)[0].startswith("sha256:")
    with pytest.raises(RegistryAccessDeniedError, match=f"refused pod {teams.a}/elsewhere"):
        node.for_pod(f"{teams.a}/elsewhere").manifest(ref_a)  # bound to another node
    with pytest.raises(RegistryAccessDeniedError):
        node.manifest(ref_a)  # no pod named
    with pytest.raises(RegistryAccessDeniedError):
        node.for_pod(f"{teams.a}/mine").manifest(parse_ref(f"{teams.b}/app:1", token_lab.registry))


def test_public_projects_pull_without_credentials_and_push_for_admins_only(
    token_lab: TokenLab, image_root: Path
) -> None:
    admin = _client(token_lab, _bearer(token_lab, ADMIN_TOKEN))
    digest = _push(admin, "nestlab/demo", image_root)
    anonymous = _client(token_lab, TokenAuth(context=token_lab.api.context()))
    assert anonymous.manifest(parse_ref("nestlab/demo:1", token_lab.registry))[0] == digest
    bob = _client(token_lab, _bearer(token_lab, BOB_TOKEN))
    assert bob.manifest(parse_ref("nestlab/demo:1", token_lab.registry))[0] == digest
    with pytest.raises(RegistryAccessDeniedError):
        _push(bob, "nestlab/demo", image_root)


def test_basic_credentials_with_a_token_as_password(
    token_lab: TokenLab, teams: Teams, image_root: Path
) -> None:
    docker_login = TokenAuth(context=token_lab.api.context(), basic=("bob", BOB_TOKEN))
    _push(_client(token_lab, docker_login), f"{teams.a}/basic", image_root)
    wrong = TokenAuth(context=token_lab.api.context(), basic=("bob", "not-a-password"))
    with pytest.raises(Exception, match="did not accept the credentials"):
        _client(token_lab, wrong).manifest(parse_ref(f"{teams.a}/basic:1", token_lab.registry))


def _oci_tarball(tmp_path: Path, root: Path) -> tuple[Path, str]:
    layer, config, manifest = oci.build(root, oci.Recipe(cmd=("sh",)))
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    for data in (layer, config, manifest):
        (layout / "blobs" / "sha256" / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    entry = {"mediaType": imagepush.OCI_MANIFEST, "digest": digest, "size": len(manifest)}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    with tarfile.open(tmp_path / "image.tar", "w") as tar:
        tar.add(layout, arcname=".")
    return tmp_path / "image.tar", digest


def test_image_push_of_a_tarball_and_from_a_local_registry_as_an_editor(
    token_lab: TokenLab, teams: Teams, image_root: Path, tmp_path: Path
) -> None:
    bob = _client(token_lab, _bearer(token_lab, BOB_TOKEN))
    tarball, digest = _oci_tarball(tmp_path, image_root)
    lines: list[str] = []
    with imagepush.open_source(str(tarball)) as found:
        assert imagepush.push(found, bob, f"{teams.a}/pushed", "1", lines.append) == digest
    assert bob.manifest(parse_ref(f"{teams.a}/pushed:1", token_lab.registry))[0] == digest
    assert any("100% of" in line for line in lines)
    local = start_registry(tmp_path / "local")  # plain HTTP on loopback, as `docker run registry:2`
    try:
        _push(RegistryClient(local.address), "web", image_root)
        with imagepush.open_source(f"{local.address}/web:1") as found:
            copied = imagepush.push(found, bob, f"{teams.a}/copied", found.tag, lines.append)
        assert copied == RegistryClient(local.address).manifest(parse_ref(f"{local.address}/web:1", ""))[0]
        carol_auth = TokenAuth.with_certificate(
            token_lab.api.pki.ca, token_lab.api.pki.carol_cert, token_lab.api.pki.carol_key
        )
        with (
            pytest.raises(RegistryAccessDeniedError),
            imagepush.open_source(f"{local.address}/web:1") as found,
        ):
            imagepush.push(found, _client(token_lab, carol_auth), f"{teams.a}/viewer", "1")
    finally:
        local.process.stop()


def test_the_image_service_pulls_for_a_pod_with_the_nodes_credentials(
    token_lab: TokenLab, teams: Teams, image_root: Path, tmp_path: Path
) -> None:
    admin = _client(token_lab, _bearer(token_lab, ADMIN_TOKEN))
    digest = _push(admin, f"{teams.a}/served", image_root)
    _pod(token_lab.api, teams.a, "served", "esx-07")
    node_auth = _bearer(token_lab, NODE_TOKEN)
    store = images.ImageStore(tmp_path / "images", lambda registry: RegistryClient(registry, auth=node_auth))
    ref = parse_ref(f"{teams.a}/served:1", token_lab.registry)
    pulled = store.pull(ref, policy="Always", pod=f"{teams.a}/served")
    assert pulled.digest == digest
    assert pulled.disk.is_file()
    for policy in ("Always", "IfNotPresent"):  # the disk on this host does not let team-b in
        with pytest.raises(RegistryAccessDeniedError, match=f"refused pod {teams.b}/intruder"):
            store.pull(ref, policy=policy, pod=f"{teams.b}/intruder")
    with pytest.raises(ImageNeverPullError):
        store.pull(ref, policy="Never", pod=f"{teams.b}/intruder")
    _pod(token_lab.api, teams.a, "second", "esx-07")
    assert store.pull(ref, policy="Never", pod=f"{teams.a}/second").digest == digest  # team-a's, cached
    missing = parse_ref(f"{teams.a}/nothing:1", token_lab.registry)
    with pytest.raises(ImageNotFoundError, match=f"nestlab image push SOURCE --namespace {teams.a}"):
        store.pull(missing, pod=f"{teams.a}/served")
