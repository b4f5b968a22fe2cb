"""``nestlab-proxy``: the per-host service proxy process (flags, wiring, shutdown).

Everything here is wiring: the loop is :mod:`nestlab.proxy.proxy`. The proxy authenticates as
its node (the agent's client certificate: ``system:node:<host>``), lists and watches Services and
EndpointSlices through the shared informers, and programs table ``ip nestlab``. On SIGTERM it
stops without touching the table, so Services keep working while it restarts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from nestlab.api.client import ApiClient, Credentials
from nestlab.api.resources import ENDPOINTSLICES, NAMESPACES, NETWORKPOLICIES, PODS, SERVICES
from nestlab.controller.informer import InformerFactory
from nestlab.errors import UsageError
from nestlab.proxy import hostroute
from nestlab.proxy.firewall import Firewall
from nestlab.proxy.nft import Nft
from nestlab.proxy.proxy import Proxy
from nestlab.proxy.rules import HostNetwork

log = logging.getLogger("nestlab.proxy")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nestlab-proxy", description="nestlab service proxy (the NSX distributed load balancer)"
    )
    add = parser.add_argument
    add("--api-server", required=True, help="https://VIP:6443")
    add("--ca", type=Path, help="CA of the API server's certificate")
    add("--token-file", type=Path, help="bearer token (instead of a client certificate)")
    add("--cert", type=Path, help="client certificate: the node's, system:node:<node>")
    add("--key", type=Path)
    add("--node-name", required=True, help="this host's Node name (internalTrafficPolicy: Local)")
    add("--pod-bridge", default="nlpods", help="the pod bridge the agent manages")
    add("--pod-subnet", default="", help="this host's pod subnet (hairpin masquerade); empty: no pods")
    add("--pods-cidr", required=True, help="the lab's whole pod network")
    add("--management-cidr", required=True, help="the management network pods may not reach")
    add(
        "--services-cidr",
        default="",
        help="routed to an empty bridge so the host reaches ClusterIPs; empty: none",
    )
    add(
        "--network-policy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also enforce NetworkPolicy (table ip nestlab-policy, nestlab.proxy.firewall)",
    )
    add("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser.parse_args(argv)


def host_network(args: argparse.Namespace) -> HostNetwork:
    """The networks from the flags, or a UsageError naming the bad one."""
    for flag in ("pods_cidr", "management_cidr", "pod_subnet", "services_cidr"):
        value = getattr(args, flag)
        if flag in ("pod_subnet", "services_cidr") and not value:
            continue
        try:
            ipaddress.IPv4Network(value, strict=False)
        except ValueError as exc:
            name = "--" + flag.replace("_", "-")
            raise UsageError(
                f"{name}={value!r} is not an IPv4 network ({exc}); write e.g. 198.19.0.0/16"
            ) from exc
    return HostNetwork(args.pod_bridge, args.pods_cidr, args.management_cidr, args.pod_subnet)


async def run(args: argparse.Namespace, network: HostNetwork) -> None:
    if args.services_cidr:
        try:
            await asyncio.to_thread(hostroute.ensure, args.services_cidr)
        except hostroute.RouteError as exc:  # pods still reach Services; the host itself does not
            log.error("%s", exc)  # noqa: TRY400 - the admin reads the message
    token = args.token_file.read_text().strip() if args.token_file else None
    client = ApiClient(Credentials(args.api_server, args.ca, token, args.cert, args.key))
    informers = InformerFactory(client)
    proxy = Proxy(
        informers.informer(SERVICES), informers.informer(ENDPOINTSLICES), Nft(), network, args.node_name
    )
    loops: list[Coroutine[Any, Any, None]] = [proxy.run()]
    if args.network_policy:
        firewall = Firewall(
            args.node_name,
            pods=informers.informer(PODS),
            namespaces=informers.informer(NAMESPACES),
            policies=informers.informer(NETWORKPOLICIES),
            apply=Nft().apply,
        )
        loops.append(firewall.run())
    informers.start()
    log.info(
        "node %s: proxying Services (pods %s, bridge %s), NetworkPolicy %s",
        args.node_name, network.pods_cidr, network.pod_bridge, "on" if args.network_policy else "off",
    )  # fmt: skip

    async def everything() -> None:
        await asyncio.gather(*loops)

    task = asyncio.create_task(everything())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    done = asyncio.create_task(stop.wait())
    await asyncio.wait([task, done], return_when=asyncio.FIRST_COMPLETED)
    task.cancel()
    done.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task  # re-raises what ended the loop, if it ended on its own
    proxy.queue.shutdown()
    await informers.stop()
    await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        network = host_network(args)
        asyncio.run(run(args, network))
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # the message is for the admin reading journalctl
        log.error("nestlab-proxy: %s", exc)  # noqa: TRY400
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
