"""Login time, and what verifying a login token adds to each request (the Token Exchange Service).

Stands up on loopback a one-member etcd and the real nestlab-apiserver (with its identity signing
key, as the integration fixtures do), adds a user in group nestlab:admins, then measures over one
keep-alive HTTPS connection:

- login: ``POST /nestlab/v1/login`` with HTTP Basic (argon2id verification included), median of N;
- a GET with the login token vs the same GET with a static token (the verification's cost);
- in process, against the same etcd: one identity-store read (what a per-request revocation check
  would cost) and :meth:`UserTokens.verify` with the 1 s user cache vs with no cache.

    .venv/bin/python bench/login.py --logins 20 --requests 200
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab.api.etcd import EtcdClient
from nestlab.api.identity import IdentityStore
from nestlab.api.usertokens import UserCache, UserTokens, load_signing_key
from nestlab.runtime import proc
from tests.integration.api.conftest import ADMIN_TOKEN, IDENTITY_KEY, start_apiserver

USER, PASSWORD = "bench-user", "bench-Secret-2026"  # a throwaway user of a throwaway server
PATH = "/api/v1/namespaces/default"


class Api:
    """One keep-alive HTTPS connection."""

    def __init__(self, url: str, ca: Path) -> None:
        host, _, port = url.removeprefix("https://").partition(":")
        self.conn = http.client.HTTPSConnection(
            host, int(port), context=ssl.create_default_context(cafile=str(ca)), timeout=30
        )

    def request(self, method: str, path: str, body: object = None, auth: str = "") -> tuple[int, bytes]:
        headers = {"Authorization": auth} if auth else {}
        if body is not None:
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read()


def timed(count: int, call: Callable[[], tuple[int, bytes]], expect: int) -> list[float]:
    """Milliseconds of ``count`` calls (each must answer ``expect``)."""
    out = []
    for _ in range(count):
        start = time.perf_counter()
        code, body = call()
        out.append((time.perf_counter() - start) * 1000)
        if code != expect:
            raise SystemExit(f"expected {expect}, got {code}: {body[:300]!r}")
    return out


async def timed_async(count: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    out = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def show(what: str, values: list[float]) -> None:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    print(f"  {what:<58} median {statistics.median(values):8.2f} ms   p90 {p90:8.2f} ms   (n={len(values)})")


async def in_process(etcd_url: str, key: Path, token: str, count: int) -> None:
    etcd = EtcdClient([etcd_url])
    try:
        store = IdentityStore(etcd)
        show("identity-store read (one etcd range)", await timed_async(count, lambda: store.get(USER)))
        signing = load_signing_key(key)
        for label, max_age in (
            ("verify, no cache (etcd read each time)", 0.0),
            ("verify, 1 s user cache", 1.0),
        ):
            tokens = UserTokens(signing, UserCache(store, max_age=max_age))
            show(label, await timed_async(count, lambda t=tokens: t.verify(token)))  # type: ignore[misc]
    finally:
        await etcd.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logins", type=int, default=20)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nllogin-"))
    started: list[proc.Process] = []
    try:
        certs = pki(work)
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        url, api_proc, _log = start_apiserver(certs, [etcd_url], work)
        started.append(api_proc)
        api = Api(url, certs.ca)
        admin = f"Bearer {ADMIN_TOKEN}"
        user = {"name": USER, "groups": ["nestlab:admins"], "password": PASSWORD}
        timed(1, lambda: api.request("POST", "/nestlab/v1/users", user, admin), 201)
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        print(f"nestlab-apiserver + 1-member etcd on loopback; user {USER} (argon2id, argon2-cffi defaults):")
        show(
            "login (POST /nestlab/v1/login)",
            timed(args.logins, lambda: api.request("POST", "/nestlab/v1/login", None, basic), 200),
        )
        _code, body = api.request("POST", "/nestlab/v1/login", None, basic)
        token = json.loads(body)["token"]
        show(
            f"GET {PATH} with the static admin token",
            timed(args.requests, lambda: api.request("GET", PATH, None, admin), 200),
        )
        show(
            f"GET {PATH} with the login token",
            timed(args.requests, lambda: api.request("GET", PATH, None, f"Bearer {token}"), 200),
        )
        asyncio.run(in_process(etcd_url, work / IDENTITY_KEY, token, args.requests))
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
