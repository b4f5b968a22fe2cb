"""Encryption at rest: kube-apiserver's EncryptionConfiguration, applied where objects meet etcd.

Anyone who can read etcd (a backup, ``etcdctl`` on a control-plane node) would otherwise read every
Secret in clear. As upstream, ``--encryption-provider-config FILE`` names an
``apiserver.config.k8s.io/v1 EncryptionConfiguration``: per resource, an ordered list of
providers. The first provider's first key encrypts every write; on read the stored value's prefix
picks the provider and key (``k8s:enc:aesgcm:v1:key1:`` + nonce + ciphertext), and ``identity``
(no prefix) reads what was stored before encryption was turned on. The store calls this module on
its way to and from etcd (:mod:`nestlab.api.store`), so nothing above the store sees ciphertext.

Providers: ``aesgcm`` (AES-GCM, random 12-byte nonce, the etcd key as authenticated data, as
upstream: a value cannot be moved to another key) and ``aescbc`` (AES-CBC, PKCS#7), both from the
``cryptography`` library, and ``identity``. ``secretbox`` and ``kms`` are refused by name. Upstream
asks for an aesgcm key to be rotated every 200,000 writes (random nonces); a lab never gets there.
``cryptography`` is imported only when a configuration names an AES provider: every API server
imports the store, and only one started with ``--encryption-provider-config`` needs the library.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from nestlab.api.kinds.base import Resource
from nestlab.errors import NestlabError, UsageError

API_VERSION = "apiserver.config.k8s.io/v1"
KIND = "EncryptionConfiguration"
ENCRYPTED = b"k8s:enc:"
"""Every encrypted value starts with this; the provider and key name follow."""
AES_KEY_SIZES = (16, 24, 32)
NONCE_SIZE = 12  # AES-GCM's standard nonce, as upstream
BLOCK = 16  # AES block size: the CBC IV and padding unit
_UNSUPPORTED = ("secretbox", "kms")


class EncryptionConfigError(UsageError):
    """The encryption provider configuration cannot be used; the message names the file and the field."""


class TransformError(NestlabError):
    """A stored value cannot be decrypted (unknown prefix, wrong key, tampered ciphertext)."""


class Transformer(Protocol):
    """What the store needs: bytes to etcd and back, per resource, with the etcd key as context."""

    def to_storage(self, resource: Resource, key: str, data: bytes) -> bytes: ...

    def from_storage(self, resource: Resource, key: str, data: bytes) -> bytes: ...


@dataclass(frozen=True)
class AesGcm:
    """One aesgcm key: ``prefix`` + 12-byte nonce + ciphertext and tag; the etcd key is authenticated."""

    name: str
    secret: bytes

    @property
    def prefix(self) -> bytes:
        return f"k8s:enc:aesgcm:v1:{self.name}:".encode()

    def seal(self, data: bytes, context: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415 - see module doc

        nonce = os.urandom(NONCE_SIZE)
        return self.prefix + nonce + AESGCM(self.secret).encrypt(nonce, data, context)

    def open(self, payload: bytes, context: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415 - see module doc
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        if len(payload) < NONCE_SIZE + 16:
            raise TransformError("the stored data was shorter than the required size")
        try:
            return AESGCM(self.secret).decrypt(payload[:NONCE_SIZE], payload[NONCE_SIZE:], context)
        except InvalidTag:
            raise TransformError(
                f"aesgcm key {self.name!r} cannot decrypt it (wrong key or tampered)"
            ) from None


@dataclass(frozen=True)
class AesCbc:
    """One aescbc key: ``prefix`` + 16-byte IV + AES-CBC ciphertext of the PKCS#7-padded value."""

    name: str
    secret: bytes

    @property
    def prefix(self) -> bytes:
        return f"k8s:enc:aescbc:v1:{self.name}:".encode()

    def seal(self, data: bytes, _context: bytes) -> bytes:
        from cryptography.hazmat.primitives import padding  # noqa: PLC0415 - see module doc
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

        iv = os.urandom(BLOCK)
        padder = padding.PKCS7(BLOCK * 8).padder()
        padded = padder.update(data) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self.secret), modes.CBC(iv)).encryptor()
        return self.prefix + iv + encryptor.update(padded) + encryptor.finalize()

    def open(self, payload: bytes, _context: bytes) -> bytes:
        from cryptography.hazmat.primitives import padding  # noqa: PLC0415 - see module doc
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: PLC0415

        if len(payload) < 2 * BLOCK or len(payload) % BLOCK:
            raise TransformError("the stored data is not a whole number of AES blocks")
        decryptor = Cipher(algorithms.AES(self.secret), modes.CBC(payload[:BLOCK])).decryptor()
        padded = decryptor.update(payload[BLOCK:]) + decryptor.finalize()
        unpadder = padding.PKCS7(BLOCK * 8).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise TransformError(f"aescbc key {self.name!r} cannot decrypt it (wrong key)") from None


@dataclass(frozen=True)
class Identity:
    """No encryption: writes plain values, reads values stored before encryption was turned on."""

    prefix = b""

    def seal(self, data: bytes, _context: bytes) -> bytes:
        return data

    def open(self, payload: bytes, _context: bytes) -> bytes:
        if payload.startswith(ENCRYPTED):
            raise TransformError("identity transformer tried to read encrypted data")
        return payload


Provider = AesGcm | AesCbc | Identity


@dataclass(frozen=True)
class Rule:
    """One ``resources[]`` entry: which resources, and their providers (one per key) in order."""

    resources: tuple[str, ...]
    providers: tuple[Provider, ...]

    def matches(self, resource: Resource) -> bool:
        group = resource.group
        names = {f"{resource.plural}.{group}" if group else resource.plural, f"*.{group}", "*.*"}
        return bool(names & set(self.resources))


@dataclass(frozen=True)
class Encryption:
    """A loaded configuration: the first matching rule encrypts and decrypts a resource's values."""

    rules: tuple[Rule, ...] = ()
    source: str = ""
    """The file it came from, for messages."""

    def _providers(self, resource: Resource) -> tuple[Provider, ...]:
        for rule in self.rules:
            if rule.matches(resource):
                return rule.providers
        return (Identity(),)

    def to_storage(self, resource: Resource, key: str, data: bytes) -> bytes:
        """``data`` as stored: sealed by the first provider of the resource's rule."""
        return self._providers(resource)[0].seal(data, key.encode())

    def from_storage(self, resource: Resource, key: str, data: bytes) -> bytes:
        """The plain value of a stored one, by the provider its prefix names (upstream's order and
        fallbacks: an identity provider that meets encrypted data lets the next one try)."""
        errors: list[str] = []
        for provider in self._providers(resource):
            if data.startswith(provider.prefix):
                try:
                    return provider.open(data[len(provider.prefix) :], key.encode())
                except TransformError as exc:
                    if provider.prefix:
                        raise
                    errors.append(str(exc))
        raise TransformError("; ".join(errors) or "no matching prefix found")

    def describe(self) -> str:
        """One line for the log: what is encrypted, with which provider and key."""
        parts = []
        for rule in self.rules:
            first = rule.providers[0]
            how = (
                "identity" if isinstance(first, Identity) else f"{type(first).__name__.lower()}:{first.name}"
            )
            parts.append(f"{','.join(rule.resources)} -> {how}")
        return "; ".join(parts) or "nothing"


IDENTITY = Encryption()
"""No configuration: every value is stored as it is."""


def _fail(source: str, where: str, problem: str) -> EncryptionConfigError:
    return EncryptionConfigError(f"encryption provider config {source}: {where}: {problem}")


def _need_cryptography(source: str) -> None:
    try:
        import cryptography  # noqa: F401, PLC0415 - only a check that the library is there
    except ImportError:
        raise EncryptionConfigError(
            f"encryption provider config {source}: aesgcm and aescbc need the cryptography library, "
            "which is not installed: install nestlab with its apiserver extra"
        ) from None


def _keys(kind: str, config: Any, source: str, where: str) -> list[Provider]:
    keys = config.get("keys") if isinstance(config, dict) else None
    if not isinstance(keys, list) or not keys:
        raise _fail(source, f"{where}.{kind}.keys", "at least one key is required")
    out: list[Provider] = []
    for index, entry in enumerate(keys):
        at = f"{where}.{kind}.keys[{index}]"
        if not isinstance(entry, dict) or not entry.get("name") or not isinstance(entry.get("name"), str):
            raise _fail(source, f"{at}.name", "a key needs a name")
        if ":" in entry["name"]:
            raise _fail(
                source, f"{at}.name", "a key name may not contain ':' (it is part of the stored prefix)"
            )
        try:
            secret = base64.b64decode(str(entry.get("secret", "")), validate=True)
        except (binascii.Error, ValueError):
            raise _fail(source, f"{at}.secret", "must be base64") from None
        if len(secret) not in AES_KEY_SIZES:
            raise _fail(source, f"{at}.secret", f"must be a 16, 24 or 32-byte key, got {len(secret)} bytes")
        out.append(AesGcm(entry["name"], secret) if kind == "aesgcm" else AesCbc(entry["name"], secret))
    return out


def _providers(entries: Any, source: str, where: str) -> tuple[Provider, ...]:
    if not isinstance(entries, list) or not entries:
        raise _fail(source, f"{where}.providers", "at least one provider is required")
    out: list[Provider] = []
    for index, entry in enumerate(entries):
        at = f"{where}.providers[{index}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise _fail(source, at, "each provider names exactly one of aesgcm, aescbc or identity")
        ((kind, config),) = entry.items()
        if kind == "identity":
            out.append(Identity())
        elif kind in ("aesgcm", "aescbc"):
            _need_cryptography(source)
            out += _keys(kind, config, source, at)
        elif kind in _UNSUPPORTED:
            raise _fail(source, f"{at}.{kind}", "not supported by nestlab: use aesgcm or aescbc")
        else:
            raise _fail(source, f"{at}.{kind}", "unknown provider: use aesgcm, aescbc or identity")
    names = [p.name for p in out if not isinstance(p, Identity)]
    if len(names) != len(set(names)):
        raise _fail(source, f"{where}.providers", "key names must be unique")
    return tuple(out)


def parse(document: Any, source: str) -> Encryption:
    """An :class:`Encryption` from a decoded EncryptionConfiguration; errors name ``source`` and the field."""
    if not isinstance(document, dict):
        raise _fail(source, "document", f"expected a {KIND} object")
    if document.get("kind") != KIND or document.get("apiVersion") != API_VERSION:
        raise _fail(source, "kind", f"expected apiVersion {API_VERSION} and kind {KIND}")
    entries = document.get("resources")
    if not isinstance(entries, list) or not entries:
        raise _fail(source, "resources", "at least one resources entry is required")
    rules = []
    for index, entry in enumerate(entries):
        where = f"resources[{index}]"
        names = entry.get("resources") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise _fail(source, f"{where}.resources", "list the resources to encrypt (e.g. secrets)")
        rules.append(Rule(tuple(n.lower() for n in names), _providers(entry.get("providers"), source, where)))
    return Encryption(tuple(rules), source)


def load(path: Path) -> Encryption:
    """Read ``--encryption-provider-config``; a missing, unreadable or wrong file is an error naming it."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise EncryptionConfigError(f"cannot read encryption provider config {path}: {exc.strerror}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionConfigError(f"encryption provider config {path} is not YAML: {exc}") from exc
    return parse(document, str(path))


def render(key_name: str, secret: bytes, resources: Sequence[str] = ("secrets",)) -> str:
    """An EncryptionConfiguration: ``resources`` under one aesgcm key, identity to read older values."""
    document = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "resources": [
            {
                "resources": list(resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": key_name, "secret": base64.b64encode(secret).decode()}]}},
                    {"identity": {}},
                ],
            }
        ],
    }
    return yaml.safe_dump(document, sort_keys=False)
