"""``nestlab-dns``: feed this control-plane node's unbound from the API and announce it in kube-dns.

One per control-plane node, next to unbound (roles/control_plane installs both). API flags mirror
nestlab-controller's; ``--cluster-domain`` is the kubelet's name for the zone.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nestlab.api.client import ApiClient, Credentials
from nestlab.controller.informer import InformerFactory
from nestlab.dns.feeder import RESYNC_SECONDS, Feeder, FeederConfig, serve
from nestlab.dns.presence import DURATION, INTERVAL, Presence, PresenceConfig
from nestlab.dns.records import DEFAULT_TTL, zone_of
from nestlab.dns.unbound import Unbound
from nestlab.errors import NestlabError, UsageError


@dataclass(frozen=True)
class Options:
    """What ``nestlab-dns`` is told on its command line."""

    credentials: Credentials
    presence: PresenceConfig
    feeder: FeederConfig
    unbound_config: Path | None
    """The unbound.conf naming the control socket (passed to ``unbound-control -c``)."""
    unbound_control: str


def parse_args(argv: Sequence[str]) -> Options:
    """Options from the command line; UsageError on inconsistent flags."""
    parser = argparse.ArgumentParser(prog="nestlab-dns", description="cluster DNS records into unbound")
    parser.add_argument("--server", required=True, help="API server URL, e.g. https://127.0.0.1:6443")
    parser.add_argument("--certificate-authority", type=Path, help="CA of the API server certificate")
    parser.add_argument("--token-file", type=Path, help="file holding a bearer token")
    parser.add_argument("--client-certificate", type=Path)
    parser.add_argument("--client-key", type=Path)
    parser.add_argument(
        "--identity", default=socket.gethostname(), help="node name: the Lease is nestlab-dns-<identity>"
    )
    parser.add_argument("--address", required=True, help="address unbound answers on, published in kube-dns")
    parser.add_argument("--cluster-domain", default="cluster.local", help="the cluster zone")
    parser.add_argument(
        "--ttl", type=int, default=DEFAULT_TTL, help="record TTL, seconds (CoreDNS's default 5)"
    )
    parser.add_argument("--unbound-config", type=Path, default=Path("/etc/unbound/unbound.conf"))
    parser.add_argument("--unbound-control", default="unbound-control", help="unbound-control binary")
    parser.add_argument("--lease-duration", type=int, default=DURATION, help="seconds")
    parser.add_argument("--renew-interval", type=float, default=INTERVAL, help="seconds")
    parser.add_argument("--resync-interval", type=float, default=RESYNC_SECONDS, help="seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(list(argv))
    token = None
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as exc:
            raise UsageError(f"cannot read --token-file {args.token_file}: {exc.strerror}") from exc
    if (args.client_certificate is None) != (args.client_key is None):
        raise UsageError("--client-certificate and --client-key go together")
    if token is None and args.client_certificate is None:
        raise UsageError(
            "give --token-file or --client-certificate/--client-key: the API server requires a user"
        )
    try:
        address = str(ipaddress.ip_address(args.address))
        zone_of(args.cluster_domain)
    except ValueError as exc:
        raise UsageError(f"--address/--cluster-domain: {exc}") from exc
    if not 0 <= args.ttl <= 3600:
        raise UsageError(f"--ttl must be 0..3600 seconds (CoreDNS's bounds), not {args.ttl}")
    if not 0 < args.renew_interval < args.lease_duration:
        raise UsageError("--renew-interval must be positive and shorter than --lease-duration")
    if args.resync_interval <= 0:
        raise UsageError(f"--resync-interval must be positive seconds, not {args.resync_interval:g}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return Options(
        Credentials(args.server, args.certificate_authority, token, args.client_certificate, args.client_key),
        PresenceConfig(args.identity, address, args.lease_duration, args.renew_interval),
        FeederConfig(args.cluster_domain, args.ttl, args.resync_interval),
        args.unbound_config,
        args.unbound_control,
    )


async def run(options: Options) -> None:
    """Feed unbound and keep the Lease until SIGTERM/SIGINT, then withdraw from kube-dns."""
    client = ApiClient(options.credentials)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        informers = InformerFactory(client)
        unbound = Unbound(options.unbound_config, control=options.unbound_control)
        feeder = Feeder(informers, unbound, options.feeder)
        await serve(informers, feeder, Presence(client, options.presence), stop)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    try:
        asyncio.run(run(parse_args(sys.argv[1:] if argv is None else argv)))
    except NestlabError as exc:
        print(f"nestlab-dns: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
