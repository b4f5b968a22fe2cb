"""``nestlab-datastore``: the lab datastore service on the depot (flags, wiring, shutdown).

Everything here is wiring; the work is :mod:`nestlab.datastore.volumes`. On start it recovers the
state (adopting the qemu-storage-daemons a previous process left running, restarting the ones that
died), then serves HTTPS. On SIGTERM it stops serving and leaves the exports running: nodes keep
their volumes across a restart of the service (the unit uses ``KillMode=process``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from nestlab.datastore import service
from nestlab.datastore.errors import DatastoreError
from nestlab.datastore.exports import Exporter
from nestlab.datastore.volumes import Volumes
from nestlab.errors import UsageError

log = logging.getLogger("nestlab.datastore")
PORT = 9443
STATE_DIR = Path("/var/lib/nestlab/datastore")
PORT_RANGE = "10809-10999"  # 10809 is NBD's IANA port; one port per attached volume


def parse_ports(text: str) -> range:
    """``LOW-HIGH`` (inclusive) as a range; UsageError otherwise."""
    low, _, high = text.partition("-")
    try:
        first, last = int(low), int(high or low)
    except ValueError:
        raise UsageError(f"--port-range {text!r}: give LOW-HIGH, e.g. {PORT_RANGE}") from None
    if not 1024 <= first <= last <= 65535:
        raise UsageError(f"--port-range {text!r}: give 1024 <= LOW <= HIGH <= 65535")
    return range(first, last + 1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nestlab-datastore", description="lab datastore: block volumes over NBD (CNS stand-in)"
    )
    add = parser.add_argument
    add("--listen", default="0.0.0.0", help="address of the HTTPS API")  # noqa: S104 - the lab network
    add("--port", type=int, default=PORT, help="port of the HTTPS API")
    add("--export-address", required=True, help="the depot's lab address: NBD exports listen there")
    add("--port-range", default=PORT_RANGE, help="NBD ports, one per attached volume (LOW-HIGH)")
    add("--state-dir", type=Path, default=STATE_DIR, help="state.json, volumes/ and exports/")
    add("--tls-cert", type=Path, help="the depot's serving certificate (plain HTTP without: tests only)")
    add("--tls-key", type=Path)
    add("--client-ca", type=Path, help="CA of client certificates (the lab CA)")
    add(
        "--allow-client",
        action="append",
        default=[],
        help="common name of a client certificate allowed to call (repeatable; e.g. controller)",
    )
    add("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    try:
        ipaddress.ip_address(args.export_address)
    except ValueError:
        parser.error(f"--export-address {args.export_address!r} is not an IP address")
    if (args.tls_cert is None) != (args.tls_key is None) or (args.tls_cert is None) != (
        args.client_ca is None
    ):
        parser.error("--tls-cert, --tls-key and --client-ca go together (mutual TLS)")
    return args


async def run(args: argparse.Namespace) -> None:
    ports = parse_ports(args.port_range)
    exporter = Exporter(args.state_dir / "exports", args.export_address)
    volumes = Volumes(args.state_dir, exporter, ports, host=args.export_address)
    await asyncio.to_thread(volumes.recover)
    context = None
    if args.tls_cert is not None:
        context = service.tls_context(str(args.tls_cert), str(args.tls_key), str(args.client_ca))
    runner = await service.serve(volumes, args.listen, args.port, context, args.allow_client)
    log.info(
        "serving %d volumes on %s:%d (NBD exports on %s, ports %s)",
        len(volumes.list()), args.listen, args.port, args.export_address, args.port_range,
    )  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    kept = exporter.forget()
    log.info("stopped; %d exports keep running for the next service process", len(kept))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(run(args))
    except (DatastoreError, UsageError) as exc:
        log.error("nestlab-datastore: %s", exc)  # noqa: TRY400 - the admin reads the message
        return exc.exit_code
    except OSError as exc:  # the port is taken, a certificate is unreadable
        log.error("nestlab-datastore: %s", exc)  # noqa: TRY400
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
