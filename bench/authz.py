"""Authorization cost per request with 1,000 RoleBindings vs with 10, side by side in one run.

Stands up on loopback a one-member etcd, stores the built-in ClusterRoles (bootstraproles) and
grows the RoleBindings of one namespace from 10 to 1,000 (each naming another user; one names the
measured user as ``edit``). For each size it times, in process, the real
:class:`~nestlab.api.access.Authorizer` with its watch-fed RBAC cache:

- an allowed decision (``create pods``): answered from the cache, indexed by subject;
- a denied decision (``create rolebindings``): re-checked against etcd before the 403, as designed.
  "re-read" lists the RBAC objects the decision reads again (the cost follows the namespace's
  bindings); "compare" is what the API server does: ``EtcdClient.unchanged_since``, one read-only
  transaction asking whether any of those objects changed since the cache saw them, no values sent.

With ``--http`` it also starts the real nestlab-apiserver on the same etcd and times whole requests
by a token user (``bob``, bound ``edit``) over one keep-alive HTTPS connection: an allowed list of
configmaps and a denied list of rolebindings, at each size. Prints medians and the 1,000/10 ratios.

    .venv/bin/python bench/authz.py --calls 2000 [--http]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import http.client
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loopback import one_member_etcd, pki
from nestlab.api import auth, bootstraproles, status
from nestlab.api.access import Authorizer
from nestlab.api.etcd import EtcdClient
from nestlab.api.rbacrules import Attributes
from nestlab.api.resources import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS
from nestlab.api.store import Obj, Store
from nestlab.runtime import proc
from tests.integration.api.conftest import BOB_TOKEN, ApiServer, start_apiserver, wait_until

SIZES = (10, 1000)
NS = "bench-authz"
HTTP_NS = "bench-authz-http"
USER = auth.User("bench-user", frozenset({"system:authenticated"}))
ALLOWED = Attributes("create", "", "pods", namespace=NS)
DENIED = Attributes("create", "rbac.authorization.k8s.io", "rolebindings", namespace=NS)
IN_PROCESS = ("allowed", "denied (re-read)", "denied (compare)")
DENIED_SHARE = 10  # denied decisions are timed 1/DENIED_SHARE as often: each one reads etcd


def binding(name: str, user: str) -> Obj:
    return {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


async def store_builtins(store: Store) -> None:
    """The built-in ClusterRoles and bindings, as the API server's bootstrap writes them."""
    for resource, objs in (
        (CLUSTERROLES, bootstraproles.cluster_roles()),
        (CLUSTERROLEBINDINGS, bootstraproles.cluster_role_bindings()),
    ):
        for obj in objs:
            try:
                await store.create(resource, "", copy.deepcopy(obj))
            except status.ApiError as exc:
                if exc.code != 409:
                    raise


async def grow(store: Store, namespace: str, have: int, want: int, measured: str) -> None:
    """RoleBindings ``have``..``want``-1 in ``namespace``; number 0 names ``measured``."""
    for number in range(have, want):
        user = measured if number == 0 else f"someone-{number}"
        await store.create(ROLEBINDINGS, namespace, binding(f"b-{number:04d}", user))


async def timed(call: Callable[[], Awaitable[object]], count: int) -> float:
    """Median microseconds of ``count`` calls."""
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1e6)
    return statistics.median(samples)


async def in_process(etcd_url: str, calls: int) -> dict[int, tuple[float, ...]]:
    etcd = EtcdClient([etcd_url])
    store = Store(etcd)
    rereads, compares = Authorizer(store), Authorizer(store, etcd.unchanged_since)
    results: dict[int, tuple[float, ...]] = {}
    try:
        await store_builtins(store)
        for authorizer in (rereads, compares):
            authorizer.start()
            if not await authorizer.cache.wait_synced(30):
                raise SystemExit("the RBAC cache did not sync in 30 s")
        have = 0
        for size in SIZES:
            await grow(store, NS, have, size, USER.name)
            have = size
            deadline = time.monotonic() + 60
            while any(
                sum(1 for k in a.cache.index.bindings if k[0] == NS) < size for a in (rereads, compares)
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the cache did not reach {size} bindings")
                await asyncio.sleep(0.05)
            for authorizer in (rereads, compares):
                if (
                    not (await authorizer.allowed_attrs(USER, ALLOWED))[0]
                    or (await authorizer.allowed_attrs(USER, DENIED))[0]
                ):
                    raise SystemExit("unexpected decisions: the bench measures the wrong thing")
            few = max(1, calls // DENIED_SHARE)
            figures = (
                await timed(lambda: rereads.allowed_attrs(USER, ALLOWED), calls),
                await timed(lambda: rereads.allowed_attrs(USER, DENIED), few),
                await timed(lambda: compares.allowed_attrs(USER, DENIED), few),
            )
            results[size] = figures
            shown = ", ".join(
                f"{name} {value:8.1f} us" for name, value in zip(IN_PROCESS, figures, strict=True)
            )
            print(f"  in process, {size:5d} bindings: {shown}", flush=True)
    finally:
        for authorizer in (rereads, compares):
            await authorizer.stop()
        await etcd.close()
    return results


class Http:
    """One keep-alive HTTPS connection as bob (static token)."""

    def __init__(self, api: ApiServer) -> None:
        url = urllib.parse.urlsplit(api.url)
        self.conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=api.context())

    def get(self, path: str) -> int:
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {BOB_TOKEN}"})
        response = self.conn.getresponse()
        response.read()
        return response.status


def over_http(api: ApiServer, etcd_url: str, calls: int) -> dict[int, tuple[float, ...]]:
    code, answer = api.request("POST", "/api/v1/namespaces", {"metadata": {"name": HTTP_NS}})
    if code != 201:
        raise SystemExit(f"creating namespace {HTTP_NS} answered {code}: {answer}")
    client, have = Http(api), 0
    results: dict[int, tuple[float, ...]] = {}
    allowed_path = f"/api/v1/namespaces/{HTTP_NS}/configmaps"
    denied_path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{HTTP_NS}/rolebindings"

    async def add(have: int, size: int) -> None:
        etcd = EtcdClient([etcd_url])
        try:
            await grow(Store(etcd), HTTP_NS, have, size, "bob")
        finally:
            await etcd.close()

    for size in SIZES:
        asyncio.run(add(have, size))
        have = size
        wait_until(lambda: client.get(allowed_path) == 200, "bob's binding reaching the API server")
        if client.get(denied_path) != 403:
            raise SystemExit("bob may list rolebindings: the bench measures the wrong thing")

        def median(path: str, count: int) -> float:
            samples = []
            for _ in range(count):
                start = time.perf_counter()
                client.get(path)
                samples.append((time.perf_counter() - start) * 1e3)
            return statistics.median(samples)

        allowed = median(allowed_path, calls // DENIED_SHARE)
        denied = median(denied_path, max(1, calls // DENIED_SHARE))
        results[size] = (allowed, denied)
        print(
            f"  over HTTPS, {size:5d} bindings: allowed {allowed:6.2f} ms, denied {denied:6.2f} ms",
            flush=True,
        )
    client.conn.close()
    return results


def report(label: str, unit: str, columns: tuple[str, ...], results: dict[int, tuple[float, ...]]) -> None:
    print(f"{label} (median {unit}):")
    print(f"  {'bindings':>10} " + " ".join(f"{name:>16}" for name in columns))
    for size in SIZES:
        print(f"  {size:>10} " + " ".join(f"{value:>16.2f}" for value in results[size]))
    small, large = results[SIZES[0]], results[SIZES[1]]
    ratios = ", ".join(f"{name} {b / a:.2f}x" for name, a, b in zip(columns, small, large, strict=True))
    print(f"  ratio {SIZES[1]}/{SIZES[0]}: {ratios}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="allowed decisions timed per size")
    parser.add_argument(
        "--http", action="store_true", help="also time whole requests through nestlab-apiserver"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nlauthz-"))
    started: list[proc.Process] = []
    try:
        etcd_url, etcd = one_member_etcd(work)
        started.append(etcd)
        print(
            f"RoleBindings in one namespace: {SIZES[0]} then {SIZES[1]}; {args.calls} calls per size",
            flush=True,
        )
        report(
            "in-process decision", "microseconds", IN_PROCESS, asyncio.run(in_process(etcd_url, args.calls))
        )
        if args.http:
            certs = pki(work)
            url, api_proc, log = start_apiserver(certs, [etcd_url], work)
            started.append(api_proc)
            api = ApiServer(url, certs, log, api_proc)
            report(
                "whole request over HTTPS",
                "milliseconds",
                ("allowed", "denied"),
                over_http(api, etcd_url, args.calls),
            )
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
