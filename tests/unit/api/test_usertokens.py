"""Login tokens: issued claims, and every way a token must fail (forged, expired, revoked, removed)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from nestlab.api import status
from nestlab.api.identity import IdentityStore, StoredUser
from nestlab.api.usertokens import AUDIENCE, ISSUER, UserCache, UserTokens, load_signing_key
from nestlab.errors import UsageError
from tests.unit.api.fake_etcd import FakeEtcd

KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Lab:
    """A store on a fake etcd, a cache that never reuses (max_age 0) and the token service."""

    def __init__(self, max_age: float = 0.0) -> None:
        self.store = IdentityStore(FakeEtcd())  # type: ignore[arg-type]
        self.tokens = UserTokens(KEY, UserCache(self.store, max_age=max_age))

    async def add(self, name: str, groups: tuple[str, ...] = ()) -> StoredUser:
        user = self.store.new_user(name, groups, "$argon2id$fake")
        assert await self.store.create(user)
        return user


async def refused(tokens: UserTokens, token: str) -> None:
    with pytest.raises(status.ApiError) as caught:
        await tokens.verify(token)
    assert caught.value.code == 401
    assert caught.value.message == "Unauthorized"


def claims_of(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def test_issue_and_verify() -> None:
    async def scenario() -> None:
        lab = Lab()
        alice = await lab.add("alice", ("devs",))
        issued = lab.tokens.issue(alice, ttl=600)
        header = jwt.get_unverified_header(issued.token)
        assert header["alg"] == "ES256"
        claims = claims_of(issued.token)
        assert claims["iss"] == ISSUER
        assert claims["aud"] == AUDIENCE
        assert claims["sub"] == "alice"
        assert claims["exp"] == claims["iat"] + 600 == issued.expires  # type: ignore[operator]
        assert claims["iat"] >= alice.not_before  # type: ignore[operator]
        assert claims["jti"]
        user = await lab.tokens.verify(issued.token)
        assert user is not None
        assert user.name == "alice"
        assert user.groups == {"devs", "system:authenticated"}
        assert issued.answer()["expirationTimestamp"].endswith("Z")

    asyncio.run(scenario())


def test_groups_come_from_the_store_not_the_token() -> None:
    async def scenario() -> None:
        lab = Lab()
        alice = await lab.add("alice", ("admins-to-be", "devs"))
        token = lab.tokens.issue(alice).token
        await lab.store.update(
            "alice", lambda u: StoredUser(u.name, ("devs",), u.password_hash, u.created_at, u.not_before)
        )
        user = await lab.tokens.verify(token)
        assert user is not None
        assert user.groups == {"devs", "system:authenticated"}

    asyncio.run(scenario())


def test_other_tokens_are_left_to_other_verifiers() -> None:
    async def scenario() -> None:
        lab = Lab()
        assert await lab.tokens.verify("admin-token-0123456789") is None
        other_issuer = jwt.encode(
            {"iss": "https://kubernetes.default.svc", "sub": "x"}, KEY, algorithm="ES256"
        )
        assert await lab.tokens.verify(other_issuer) is None

    asyncio.run(scenario())


def test_forged_tokens_are_refused() -> None:
    async def scenario() -> None:
        lab = Lab()
        alice = await lab.add("alice")
        good = lab.tokens.issue(alice).token
        claims = claims_of(good)
        # Signed with another key.
        await refused(lab.tokens, jwt.encode(claims, OTHER_KEY, algorithm="ES256"))
        # Claims altered, signature kept.
        head, _, sig = good.split(".")
        altered = dict(claims, sub="admin", groups=["system:masters"])
        await refused(lab.tokens, f"{head}.{b64(json.dumps(altered).encode())}.{sig}")
        # alg none.
        none_head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        await refused(lab.tokens, f"{none_head}.{b64(json.dumps(claims).encode())}.")
        # HS256 keyed with the public key (the classic algorithm-confusion forgery).
        public_pem = KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        hs_head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        signing_input = f"{hs_head}.{b64(json.dumps(claims).encode())}"
        mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
        await refused(lab.tokens, f"{signing_input}.{b64(mac)}")
        # Wrong audience, missing claims, garbage after our issuer.
        await refused(lab.tokens, jwt.encode(dict(claims, aud="someone-else"), KEY, algorithm="ES256"))
        await refused(lab.tokens, jwt.encode({"iss": ISSUER, "sub": "alice"}, KEY, algorithm="ES256"))
        await refused(lab.tokens, f"{head}.{b64(json.dumps(claims).encode())}.bm90IGEgc2lnbmF0dXJl")

    asyncio.run(scenario())


def test_expired_token_is_refused() -> None:
    async def scenario() -> None:
        lab = Lab()
        alice = StoredUser("alice", (), "$argon2id$fake", "", 0)  # created long ago
        assert await lab.store.create(alice)
        # Issued 11 hours ago for 10 hours: expired an hour ago (far beyond the 5 s leeway).
        past = UserTokens(KEY, lab.tokens.users, clock=lambda: time.time() - 11 * 3600)
        await refused(lab.tokens, past.issue(alice).token)
        just_now = UserTokens(KEY, lab.tokens.users, clock=lambda: time.time() - 601)
        await refused(lab.tokens, just_now.issue(alice, ttl=590).token)  # expired 11 s ago
        assert await lab.tokens.verify(just_now.issue(alice, ttl=900).token) is not None

    asyncio.run(scenario())


def test_revoked_and_removed_users() -> None:
    async def scenario() -> None:
        now = [time.time()]
        lab = Lab()
        lab.store.clock = lambda: now[0]
        alice = await lab.add("alice")
        old = lab.tokens.issue(alice).token
        assert await lab.tokens.verify(old) is not None
        revoked = await lab.store.revoke("alice")
        assert revoked is not None
        await refused(lab.tokens, old)
        fresh = lab.tokens.issue(revoked).token  # a login after the revocation works at once
        user = await lab.tokens.verify(fresh)
        assert user is not None
        assert user.name == "alice"
        await lab.store.delete("alice")
        await refused(lab.tokens, fresh)

    asyncio.run(scenario())


def test_ttl_bounds() -> None:
    user = StoredUser("alice", (), "$argon2id$fake", "", 0)
    tokens = Lab().tokens
    for ttl in (0, 24 * 3600 + 1):
        with pytest.raises(ValueError, match="1 to 86400"):
            tokens.issue(user, ttl)


def test_cache_reuses_a_read_for_max_age_and_shares_concurrent_reads() -> None:
    async def scenario() -> None:
        lab = Lab()
        await lab.add("alice")
        reads: list[str] = []
        real_get = lab.store.get

        async def counting_get(name: str) -> StoredUser | None:
            reads.append(name)
            return await real_get(name)

        lab.store.get = counting_get  # type: ignore[method-assign]
        clock = [0.0]
        cache = UserCache(lab.store, max_age=1.0, clock=lambda: clock[0])
        results = await asyncio.gather(*(cache.get("alice") for _ in range(10)))
        assert all(r is not None and r.name == "alice" for r in results)
        assert reads == ["alice"]  # ten concurrent verifications, one etcd read
        clock[0] = 0.9
        await cache.get("alice")
        assert len(reads) == 1
        await lab.store.delete("alice")
        clock[0] = 1.0  # max_age reached: a removed user is seen as removed
        assert await cache.get("alice") is None
        assert len(reads) == 2

    asyncio.run(scenario())


def test_signing_key_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_signing_key(tmp_path / "missing.key")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not a key")
    with pytest.raises(UsageError, match="not a PEM private key"):
        load_signing_key(garbage)
    rsa_key = tmp_path / "rsa.key"
    rsa_key.write_bytes(
        rsa.generate_private_key(65537, 2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(UsageError, match="EC P-256"):
        load_signing_key(rsa_key)
    good = tmp_path / "good.key"
    good.write_bytes(
        KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    assert isinstance(load_signing_key(good), ec.EllipticCurvePrivateKey)
