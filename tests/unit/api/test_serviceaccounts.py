"""ServiceAccounts on a fake etcd: the kind, the admission plugin, TokenRequest and token verification."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from nestlab.api import auth, saadmission, satokens, status, tokenrequest
from nestlab.api import resources as r
from nestlab.api.kinds import serviceaccount
from nestlab.api.main import parse_args
from nestlab.api.registry import Registry
from nestlab.api.store import Store
from nestlab.errors import UsageError
from nestlab.provision.pki import ensure_signing_key
from tests.unit.api.fake_etcd import FakeEtcd

Obj = dict[str, Any]
KEY = satokens.SigningKey(ec.generate_private_key(ec.SECP256R1()))
NODE = auth.User("system:node:esx-01", frozenset({"system:nodes", "system:authenticated"}))
ADMIN = auth.User("admin", frozenset({"system:masters"}))


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def pod(name: str = "web", **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


async def registry_with_accounts(*accounts: Obj) -> Registry:
    store = Store(FakeEtcd())  # type: ignore[arg-type]
    registry = Registry(store, mutating=(saadmission.hook(store.get),))
    await registry.create(r.NAMESPACES, "", {"metadata": {"name": "team-a"}})
    for account in accounts:
        await registry.create(r.SERVICEACCOUNTS, "team-a", account)
    return registry


def test_the_kind_prints_and_validates_like_upstream() -> None:
    account = {"metadata": {"name": "builder", "creationTimestamp": None}, "secrets": [{"name": "x"}]}
    assert serviceaccount.row(account)[:2] == ["builder", 1]
    assert [c.field for c in serviceaccount.validate({"metadata": {"name": "b"}, "secrets": "x"})] == [
        "secrets"
    ]
    assert serviceaccount.RESOURCE.short_names == ("sa",)
    pulling = {"metadata": {"name": "b"}, "imagePullSecrets": [{"name": "regcred"}]}
    [cause] = serviceaccount.validate(pulling)
    assert (cause.field, cause.reason) == ("imagePullSecrets", "FieldValueForbidden")
    assert "pods need no pull secret" in cause.message
    assert serviceaccount.validate({"metadata": {"name": "b"}, "imagePullSecrets": []}) == []
    assert serviceaccount.KIND.roles["edit"]["serviceaccounts/token"] == {"create"}


def test_admission_defaults_the_account_and_mounts_the_token_everywhere() -> None:
    async def scenario() -> None:
        registry = await registry_with_accounts({"metadata": {"name": "default"}})
        body = pod(initContainers=[{"name": "i", "image": "busybox"}])
        made = await registry.create(r.PODS, "team-a", body)
        spec = made["spec"]
        assert (spec["serviceAccountName"], spec["serviceAccount"]) == ("default", "default")
        (volume,) = spec["volumes"]
        assert volume["name"].startswith("kube-api-access-")
        assert len(volume["name"]) == len("kube-api-access-") + 5
        sources = volume["projected"]["sources"]
        assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
        assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
        assert sources[2]["downwardAPI"]["items"][0]["path"] == "namespace"
        for container in (*spec["initContainers"], *spec["containers"]):
            assert container["volumeMounts"] == [
                {"name": volume["name"], "readOnly": True, "mountPath": saadmission.MOUNT_PATH}
            ]

    run(scenario())


def test_a_missing_account_is_refused_with_upstreams_403() -> None:
    async def scenario() -> None:
        registry = await registry_with_accounts()
        with pytest.raises(status.ApiError) as caught:
            await registry.create(r.PODS, "team-a", pod(serviceAccountName="builder"))
        assert caught.value.code == 403
        assert caught.value.message == (
            'pods "web" is forbidden: error looking up service account team-a/builder: '
            'serviceaccount "builder" not found'
        )

    run(scenario())


@pytest.mark.parametrize(
    ("pod_says", "account_says", "mounted"),
    [
        (None, None, True),
        (False, None, False),
        (None, False, False),
        (True, False, True),
        (False, True, False),
    ],
)
def test_automount_pod_wins_over_account(
    pod_says: bool | None, account_says: bool | None, mounted: bool
) -> None:
    spec = {} if pod_says is None else {"automountServiceAccountToken": pod_says}
    account = {} if account_says is None else {"automountServiceAccountToken": account_says}
    assert saadmission.should_automount(spec, account) is mounted


def test_a_container_with_its_own_mount_there_is_left_alone() -> None:
    spec: Obj = {
        "containers": [
            {"name": "a", "volumeMounts": [{"name": "mine", "mountPath": saadmission.MOUNT_PATH}]},
            {"name": "b"},
        ],
        "volumes": [{"name": "mine", "emptyDir": {}}],
    }
    saadmission.mount(spec, suffix=lambda: "xxxxx")
    assert spec["containers"][0]["volumeMounts"] == [{"name": "mine", "mountPath": saadmission.MOUNT_PATH}]
    assert spec["containers"][1]["volumeMounts"][0]["name"] == "kube-api-access-xxxxx"
    assert [v["name"] for v in spec["volumes"]] == ["mine", "kube-api-access-xxxxx"]
    spec = {
        "containers": [{"name": "a", "volumeMounts": [{"name": "m", "mountPath": saadmission.MOUNT_PATH}]}]
    }
    saadmission.mount(spec)
    assert "volumes" not in spec


def test_the_user_of_a_bound_token_carries_upstreams_uid_and_extra() -> None:
    bare = satokens.Binding("team-a", satokens.Ref("ci", "sa-uid"))
    assert satokens.user_of(bare) == auth.User(
        "system:serviceaccount:team-a:ci",
        frozenset({"system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"}),
        uid="sa-uid",
    )
    binding = satokens.Binding(
        "team-a",
        satokens.Ref("ci", "sa-uid"),
        satokens.Ref("web", "pod-uid"),
        satokens.Ref("esx-01", "n-uid"),
    )
    token = KEY.sign(binding, [satokens.ISSUER], 600, int(time.time()))
    user = satokens.user_of(KEY.verify(token, [satokens.ISSUER], time.time()))
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    assert user.uid == "sa-uid"
    assert user.extra == {
        "authentication.kubernetes.io/pod-name": ("web",),
        "authentication.kubernetes.io/pod-uid": ("pod-uid",),
        "authentication.kubernetes.io/credential-id": (f"JTI={jti}",),
        "authentication.kubernetes.io/node-name": ("esx-01",),
        "authentication.kubernetes.io/node-uid": ("n-uid",),
    }


def test_signing_and_verifying_round_trip_and_forgeries() -> None:
    binding = satokens.Binding("team-a", satokens.Ref("default", "sa-uid"), satokens.Ref("web", "pod-uid"))
    now = int(time.time())
    token = KEY.sign(binding, [satokens.ISSUER], 600, now)
    assert KEY.is_ours(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert KEY.verify(token, [satokens.ISSUER], now) == dataclasses.replace(binding, jti=claims["jti"])
    assert claims["sub"] == "system:serviceaccount:team-a:default"
    assert claims["kubernetes.io"]["pod"] == {"name": "web", "uid": "pod-uid"}
    assert jwt.get_unverified_header(token)["kid"] == KEY.key_id
    other = satokens.SigningKey(ec.generate_private_key(ec.SECP256R1()))
    forged = [
        other.sign(binding, [satokens.ISSUER], 600, now),  # another key
        jwt.encode({**claims, "alg": "none"}, None, algorithm="none"),  # type: ignore[arg-type]
        jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!", algorithm="HS256"),
    ]
    for bad in forged:
        with pytest.raises(satokens.TokenError):
            KEY.verify(bad, [satokens.ISSUER], now)
    with pytest.raises(satokens.TokenError, match=r"(?i)audience"):
        KEY.verify(token, ["vault"], now)
    with pytest.raises(satokens.TokenError, match="expired"):
        KEY.verify(token, [satokens.ISSUER], now + 600 + satokens.LEEWAY_S + 1)
    assert not KEY.is_ours("not-a-jwt")
    assert not KEY.is_ours(satokens.SigningKey(KEY.key, "nestlab-identity").sign(binding, ["x"], 600, now))


def test_token_request_and_verification_follow_the_pod_and_the_account() -> None:
    async def scenario() -> None:
        registry = await registry_with_accounts({"metadata": {"name": "default"}})
        await registry.create(r.NODES, "", {"metadata": {"name": "esx-01"}})
        made = await registry.create(r.PODS, "team-a", pod(nodeName="esx-01"))
        uid = made["metadata"]["uid"]
        get = registry.store.get
        ref = {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid}
        body = {"kind": "TokenRequest", "spec": {"boundObjectRef": ref}}
        now = int(time.time())
        answer = await tokenrequest.create(get, KEY, NODE, "team-a", "default", body=body, now=now)
        assert answer["spec"]["expirationSeconds"] == 3600
        assert answer["spec"]["audiences"] == [satokens.ISSUER]
        assert answer["status"]["expirationTimestamp"] == satokens.rfc3339(now + 3600)
        token = answer["status"]["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["kubernetes.io"]["node"]["name"] == "esx-01"

        verifier = satokens.ServiceAccountTokens(KEY, get)
        user = await verifier.verify(token)
        account = await registry.get(r.SERVICEACCOUNTS, "team-a", "default")
        node = await registry.get(r.NODES, "", "esx-01")
        assert user == auth.User(
            "system:serviceaccount:team-a:default",
            frozenset({"system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"}),
            uid=account["metadata"]["uid"],
            extra={
                "authentication.kubernetes.io/pod-name": ("web",),
                "authentication.kubernetes.io/pod-uid": (uid,),
                "authentication.kubernetes.io/credential-id": (f"JTI={claims['jti']}",),
                "authentication.kubernetes.io/node-name": ("esx-01",),
                "authentication.kubernetes.io/node-uid": (node["metadata"]["uid"],),
            },
        )
        assert await verifier.verify("static-token") is None
        await registry.store.remove(r.PODS, "team-a", await registry.get(r.PODS, "team-a", "web"))
        with pytest.raises(status.ApiError) as caught:
            await verifier.verify(token)
        assert caught.value.code == 401

    run(scenario())


def test_token_request_refusals_are_upstreams() -> None:
    async def scenario() -> None:
        registry = await registry_with_accounts(
            {"metadata": {"name": "default"}}, {"metadata": {"name": "ci"}}
        )
        made = await registry.create(r.PODS, "team-a", pod(nodeName="esx-02"))
        uid, get = made["metadata"]["uid"], registry.store.get
        ref = {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid}

        async def refused(user: auth.User, name: str, spec: Obj) -> status.ApiError:
            with pytest.raises(status.ApiError) as caught:
                await tokenrequest.create(get, KEY, user, "team-a", name, body={"spec": spec}, now=0)
            return caught.value

        short = await refused(ADMIN, "default", {"expirationSeconds": 60})
        assert (short.code, short.message) == (
            422,
            'TokenRequest.authentication.k8s.io "default" is invalid: spec.expirationSeconds: '
            "Invalid value: 60: may not specify a duration less than 10 minutes",
        )
        missing = await refused(ADMIN, "nobody", {})
        assert (missing.code, missing.message) == (404, 'serviceaccounts "nobody" not found')
        other_account = await refused(ADMIN, "ci", {"boundObjectRef": ref})
        assert other_account.code == 400
        assert "different serviceaccount name" in other_account.message
        stale = await refused(ADMIN, "default", {"boundObjectRef": {**ref, "uid": "old"}})
        assert stale.code == 409
        assert "might have been deleted and then recreated" in stale.message
        elsewhere = await refused(NODE, "default", {"boundObjectRef": ref})
        assert (elsewhere.code, elsewhere.message) == (
            403,
            'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a '
            "different node",
        )
        unbound = await refused(NODE, "default", {})
        assert unbound.message.endswith("node requested token not bound to a pod")
        no_uid = await refused(NODE, "default", {"boundObjectRef": {**ref, "uid": ""}})
        assert no_uid.message.endswith("node requested token with a pod binding without a uid")

    run(scenario())


def test_a_pod_deleted_over_a_minute_ago_no_longer_vouches() -> None:
    now = time.time()
    assert not satokens.deleted_too_long({"metadata": {}}, now)
    recent = {"metadata": {"deletionTimestamp": satokens.rfc3339(int(now) - 10)}}
    old = {"metadata": {"deletionTimestamp": satokens.rfc3339(int(now) - 120)}}
    assert not satokens.deleted_too_long(recent, now)
    assert satokens.deleted_too_long(old, now)


def test_a_default_account_made_a_moment_later_is_waited_for() -> None:
    async def scenario() -> None:
        store = Store(FakeEtcd())  # type: ignore[arg-type]
        naps: list[float] = []

        async def controller_meanwhile(seconds: float) -> None:
            naps.append(seconds)
            existing, _ = await store.list(r.SERVICEACCOUNTS, "team-a", lambda _o: True)
            if len(naps) == 3 and not existing:
                await store.create(r.SERVICEACCOUNTS, "team-a", {"metadata": {"name": "default", "uid": "u"}})

        registry = Registry(store, mutating=(saadmission.hook(store.get, controller_meanwhile),))
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "team-a"}})
        made = await registry.create(r.PODS, "team-a", pod())
        assert made["spec"]["serviceAccountName"] == "default"
        assert len(naps) == 3
        assert all(0.1 <= n <= 0.2 for n in naps)
        naps.clear()
        with pytest.raises(status.ApiError):
            await registry.create(r.PODS, "team-a", pod("other", serviceAccountName="builder"))
        assert naps == []  # only `default` is waited for
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "empty"}})
        with pytest.raises(status.ApiError):
            await registry.create(r.PODS, "empty", pod())
        assert len(naps) == saadmission.DEFAULT_LOOKUPS - 1

    run(scenario())


def test_flags_role_and_a_key_that_cannot_be_used(tmp_path: Path) -> None:
    role = Path(__file__).resolve().parents[3] / "roles" / "control_plane"
    unit = (role / "templates" / "nestlab-apiserver.service.j2").read_text()
    assert "--service-account-signing-key-file={{ control_plane_pki_dir }}/service-account.key" in unit
    assert "--service-account-issuer={{ control_plane_service_account_issuer }}" in unit
    defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text())
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
        "options"
    ]
    name = "control_plane_service_account_issuer"
    assert defaults[name] == specs[name]["default"] == satokens.ISSUER

    key = ensure_signing_key(tmp_path, "service-account.key")
    config = parse_args(
        ["--etcd-servers", "http://127.0.0.1:2379", "--service-account-signing-key-file", str(key)]
    )
    assert (config.service_account_key, config.service_account_issuer) == (key, satokens.ISSUER)
    assert satokens.SigningKey.load(key).issuer == satokens.ISSUER
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(UsageError, match="not a PEM private key"):
        satokens.SigningKey.load(tmp_path / "junk.key")
    with pytest.raises(UsageError, match="No such file"):
        satokens.SigningKey.load(tmp_path / "missing.key")
