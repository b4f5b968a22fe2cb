"""Encryption at rest: the EncryptionConfiguration loader, the providers, and the store's one chokepoint."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from nestlab.api import encryption
from nestlab.api import resources as r
from nestlab.api.encryption import (
    AesCbc,
    AesGcm,
    Encryption,
    EncryptionConfigError,
    Identity,
    Rule,
    TransformError,
)
from nestlab.api.registry import Registry
from nestlab.api.status import ApiError
from nestlab.api.store import Store
from tests.unit.api.fake_etcd import FakeEtcd

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
ETCD_KEY = "/registry/secrets/demo/db"
PLAIN = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def config(*providers: Any, resources: list[str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [{"resources": resources or ["secrets"], "providers": list(providers)}],
    }


def aesgcm(name: str = "key1", key: bytes = KEY) -> dict[str, Any]:
    return {"aesgcm": {"keys": [{"name": name, "secret": base64.b64encode(key).decode()}]}}


def gcm_then_identity() -> Encryption:
    return encryption.parse(config(aesgcm(), {"identity": {}}), "enc.yaml")


def test_aesgcm_writes_upstreams_prefix_and_reads_back() -> None:
    at_rest = gcm_then_identity()
    stored = at_rest.to_storage(r.SECRETS, ETCD_KEY, PLAIN)
    assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert b"hunter2" not in stored
    assert b"aHVudGVyMg" not in stored
    assert len(stored) == len(b"k8s:enc:aesgcm:v1:key1:") + 12 + len(PLAIN) + 16  # nonce, tag
    assert at_rest.to_storage(r.SECRETS, ETCD_KEY, PLAIN) != stored  # a fresh nonce every write
    assert at_rest.from_storage(r.SECRETS, ETCD_KEY, stored) == PLAIN


def test_aesgcm_binds_the_value_to_its_etcd_key() -> None:
    at_rest = gcm_then_identity()
    stored = at_rest.to_storage(r.SECRETS, ETCD_KEY, PLAIN)
    with pytest.raises(TransformError, match="cannot decrypt"):
        at_rest.from_storage(r.SECRETS, "/registry/secrets/demo/other", stored)
    tampered = stored[:-1] + bytes([stored[-1] ^ 1])
    with pytest.raises(TransformError):
        at_rest.from_storage(r.SECRETS, ETCD_KEY, tampered)


def test_aescbc_round_trip() -> None:
    cbc = {"aescbc": {"keys": [{"name": "k", "secret": base64.b64encode(KEY).decode()}]}}
    at_rest = encryption.parse(config(cbc), "enc.yaml")
    stored = at_rest.to_storage(r.SECRETS, ETCD_KEY, PLAIN)
    assert stored.startswith(b"k8s:enc:aescbc:v1:k:")
    assert (len(stored) - len(b"k8s:enc:aescbc:v1:k:")) % 16 == 0
    assert at_rest.from_storage(r.SECRETS, ETCD_KEY, stored) == PLAIN
    wrong = Encryption((Rule(("secrets",), (AesCbc("k", OTHER_KEY),)),))
    with pytest.raises(TransformError):
        wrong.from_storage(r.SECRETS, ETCD_KEY, stored)


def test_values_stored_before_encryption_still_read_through_identity() -> None:
    assert gcm_then_identity().from_storage(r.SECRETS, ETCD_KEY, PLAIN) == PLAIN


def test_without_identity_plain_values_have_no_matching_prefix() -> None:
    at_rest = encryption.parse(config(aesgcm()), "enc.yaml")
    with pytest.raises(TransformError, match="no matching prefix found"):
        at_rest.from_storage(r.SECRETS, ETCD_KEY, PLAIN)


def test_identity_first_writes_plain_and_still_reads_encrypted() -> None:
    """Upstream's way to decrypt everything: identity first, the old key after it."""
    stored = gcm_then_identity().to_storage(r.SECRETS, ETCD_KEY, PLAIN)
    decrypting = encryption.parse(config({"identity": {}}, aesgcm()), "enc.yaml")
    assert decrypting.to_storage(r.SECRETS, ETCD_KEY, PLAIN) == PLAIN
    assert decrypting.from_storage(r.SECRETS, ETCD_KEY, stored) == PLAIN


def test_rotation_reads_with_any_listed_key() -> None:
    old = gcm_then_identity().to_storage(r.SECRETS, ETCD_KEY, PLAIN)
    rotated = encryption.parse(
        config(aesgcm("key2", OTHER_KEY), aesgcm("key1"), {"identity": {}}), "enc.yaml"
    )
    assert rotated.from_storage(r.SECRETS, ETCD_KEY, old) == PLAIN
    assert rotated.to_storage(r.SECRETS, ETCD_KEY, PLAIN).startswith(b"k8s:enc:aesgcm:v1:key2:")
    forgotten = encryption.parse(config(aesgcm("key2", OTHER_KEY), {"identity": {}}), "enc.yaml")
    with pytest.raises(TransformError, match="identity transformer tried to read encrypted data"):
        forgotten.from_storage(r.SECRETS, ETCD_KEY, old)


def test_other_resources_are_not_touched() -> None:
    at_rest = gcm_then_identity()
    assert at_rest.to_storage(r.CONFIGMAPS, "/registry/configmaps/demo/x", PLAIN) == PLAIN
    wildcard = encryption.parse(config(aesgcm(), resources=["*.apps"]), "enc.yaml")
    assert wildcard.to_storage(r.DEPLOYMENTS, "/registry/apps/deployments/d/x", PLAIN).startswith(b"k8s:enc:")
    assert wildcard.to_storage(r.SECRETS, ETCD_KEY, PLAIN) == PLAIN
    assert encryption.IDENTITY.to_storage(r.SECRETS, ETCD_KEY, PLAIN) == PLAIN


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        ([], "document", "expected a EncryptionConfiguration"),
        ({"kind": "Other"}, "kind", "expected apiVersion"),
        (config(), "resources[0].providers", "at least one provider"),
        (config(aesgcm(key=b"short")), "keys[0].secret", "16, 24 or 32-byte key, got 5 bytes"),
        (config({"aesgcm": {"keys": [{"name": "k", "secret": "%%%"}]}}), "keys[0].secret", "must be base64"),
        (config({"aesgcm": {"keys": [{"secret": "AA=="}]}}), "keys[0].name", "needs a name"),
        (config({"aesgcm": {"keys": []}}), "aesgcm.keys", "at least one key"),
        (config(aesgcm("a:b")), "keys[0].name", "may not contain ':'"),
        (config(aesgcm(), aesgcm()), "providers", "key names must be unique"),
        (config({"secretbox": {}}), "secretbox", "not supported by nestlab"),
        (config({"nope": {}}), "nope", "unknown provider"),
        (config({"identity": {}, "aesgcm": {}}), "providers[0]", "exactly one"),
        (
            {**config(aesgcm()), "resources": [{"providers": []}]},
            "resources[0].resources",
            "list the resources",
        ),
    ],
)
def test_bad_configurations_name_the_file_and_field(document: Any, field: str, problem: str) -> None:
    with pytest.raises(EncryptionConfigError) as error:
        encryption.parse(document, "/etc/nestlab/pki/encryption-config.yaml")
    message = str(error.value)
    assert message.startswith("encryption provider config /etc/nestlab/pki/encryption-config.yaml: ")
    assert field in message
    assert problem in message


def test_load_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(
        EncryptionConfigError, match=f"cannot read encryption provider config {tmp_path}/none"
    ):
        encryption.load(tmp_path / "none")
    broken = tmp_path / "broken.yaml"
    broken.write_text("resources: [")
    with pytest.raises(EncryptionConfigError, match="is not YAML"):
        encryption.load(broken)


def test_render_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "enc.yaml"
    path.write_text(encryption.render("key1", KEY))
    loaded = encryption.load(path)
    assert loaded.rules == (Rule(("secrets",), (AesGcm("key1", KEY), Identity())),)
    assert loaded.describe() == "secrets -> aesgcm:key1"
    assert yaml.safe_load(path.read_text())["resources"][0]["providers"][1] == {"identity": {}}


# -- the store: the one place bytes meet etcd -----------------------------------------------------
def secret_body(name: str = "db", **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name}, "stringData": {"password": "hunter2"}, **fields}


def test_store_keeps_ciphertext_in_etcd_and_plain_values_above() -> None:
    async def scenario() -> None:
        etcd = FakeEtcd()
        registry = Registry(Store(etcd, gcm_then_identity()))  # type: ignore[arg-type]
        await registry.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        created = await registry.create(r.SECRETS, "demo", secret_body())
        since = created["metadata"]["resourceVersion"]
        stored = etcd.data[ETCD_KEY].value
        assert stored.startswith(b"k8s:enc:aesgcm:v1:key1:")
        assert b"aHVudGVyMg" not in stored
        namespace = etcd.data["/registry/namespaces/demo"].value
        assert json.loads(namespace)["metadata"]["name"] == "demo"  # not a Secret: plain JSON
        fetched = await registry.get(r.SECRETS, "demo", "db")
        assert base64.b64decode(fetched["data"]["password"]) == b"hunter2"
        events = await registry.store.open_watch(r.SECRETS, "demo", since, lambda _o: True)
        await registry.patch(
            r.SECRETS, "demo", "db", "application/merge-patch+json", {"stringData": {"password": "swordfish"}}
        )
        changed = await anext(events)
        assert changed.type == "MODIFIED"
        assert base64.b64decode(changed.object["data"]["password"]) == b"swordfish"
        await events.aclose()  # type: ignore[attr-defined]
        listed = await registry.list(r.SECRETS, "demo", lambda _o: True)
        assert [base64.b64decode(s["data"]["password"]) for s in listed["items"]] == [b"swordfish"]
        assert b"swordfish" not in etcd.data[ETCD_KEY].value

    asyncio.run(scenario())


def test_store_reads_plain_values_and_names_the_key_it_cannot_decrypt() -> None:
    async def scenario() -> None:
        etcd = FakeEtcd()
        plain = Registry(Store(etcd, encryption.IDENTITY))  # type: ignore[arg-type]
        await plain.create(r.NAMESPACES, "", {"metadata": {"name": "demo"}})
        await plain.create(r.SECRETS, "demo", secret_body("old"))
        encrypted = Registry(Store(etcd, gcm_then_identity()))  # type: ignore[arg-type]
        assert (await encrypted.get(r.SECRETS, "demo", "old"))["type"] == "Opaque"
        await encrypted.create(r.SECRETS, "demo", secret_body("new"))
        other = encryption.parse(config(aesgcm("key1", OTHER_KEY), {"identity": {}}), "enc.yaml")
        lost = Registry(Store(etcd, other))  # type: ignore[arg-type]
        with pytest.raises(ApiError) as error:
            await lost.get(r.SECRETS, "demo", "new")
        assert error.value.code == 500
        assert 'unable to transform key "/registry/secrets/demo/new"' in error.value.message

    asyncio.run(scenario())
