"""``nestlab-edge``: LoadBalancer Services on the load balancer pair (the NSX Edge's virtual servers).

One per load balancer node (installed by roles/load_balancer as ``nestlab-edge.service``): routes
to the hosts' pod subnets, then table ``ip nestlab-edge`` kept equal to the API's LoadBalancer
Services (:mod:`nestlab.proxy.edgeproxy`). Stopping it leaves the rules in place (traffic keeps
flowing to the endpoints known last); ``--cleanup`` removes the table and exits. API flags as
``nestlab-agent``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

from nestlab.api.client import ApiClient, Credentials
from nestlab.errors import NestlabError, UsageError
from nestlab.proxy.edge import render_delete
from nestlab.proxy.edgeproxy import EdgeProxy, install_routes, parse_routes
from nestlab.proxy.nft import Nft


@dataclass(frozen=True)
class Options:
    """What ``nestlab-edge`` is told on its command line."""

    credentials: Credentials
    pool: IPv4Network
    """The ingress range: only addresses in it are ever programmed, all of it is refused otherwise."""
    routes: dict[IPv4Network, str]
    """Pod subnet -> the host's management address."""
    cleanup: bool = False


def parse_args(argv: Sequence[str]) -> Options:
    """Options from the command line; UsageError with what to fix."""
    parser = argparse.ArgumentParser(
        prog="nestlab-edge", description="LoadBalancer Services on the edge pair"
    )
    add = parser.add_argument
    add("--api-server", required=True, help="https://VIP:6443")
    add("--ca", type=Path, help="CA of the API server's certificate")
    add("--token-file", type=Path, help="bearer token (instead of a client certificate)")
    add("--cert", type=Path, help="client certificate (CN system:node:<lb>, O system:nodes)")
    add("--key", type=Path)
    add("--ingress-cidr", required=True, help="the lab spec's networks.ingress, e.g. 198.18.8.0/24")
    add("--pod-route", action="append", default=[], help="SUBNET=VIA: a host's pod subnet (repeatable)")
    add("--cleanup", action="store_true", help="remove table ip nestlab-edge and exit")
    add("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv))
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        pool = IPv4Network(args.ingress_cidr, strict=True)
    except ValueError as exc:
        raise UsageError(
            f"--ingress-cidr {args.ingress_cidr}: {exc} (give a network such as 198.18.8.0/24)"
        ) from exc
    try:
        routes = parse_routes(args.pod_route)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if (args.cert is None) != (args.key is None):
        raise UsageError("--cert and --key go together")
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from exc
    if token is None and args.cert is None and not args.cleanup:
        raise UsageError("give --cert/--key or --token-file: the API server requires a user")
    credentials = Credentials(args.api_server, args.ca, token, args.cert, args.key)
    return Options(credentials, pool, routes, args.cleanup)


async def run(options: Options) -> None:
    """Routes, then the edge proxy until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await asyncio.to_thread(install_routes, options.routes)
    client = ApiClient(options.credentials)
    try:
        await EdgeProxy(client, options.pool).run(stop)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        options = parse_args(sys.argv[1:] if argv is None else argv)
        if options.cleanup:
            Nft().apply(render_delete())
            return 0
        asyncio.run(run(options))
    except NestlabError as exc:
        print(f"nestlab-edge: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
