"""``nestlab dashboard``: the lab's picture in a browser (the vSphere Client's inventory, read-only).

Thin: options here, the work in :mod:`nestlab.dashboard`. Exposed for ``nestlab.cli`` as the
command :data:`dashboard` (``cli.add_command(dashboard)``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import sys
from typing import NoReturn

import click

from nestlab.dashboard import app as dashboard_app
from nestlab.dashboard.lab import for_lab
from nestlab.dashboard.serve import serve
from nestlab.dashboard.sessions import Sessions
from nestlab.errors import NestlabError


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@click.option(
    "--name", "--lab", "lab", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="TCP port (0: any free one).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback: this machine only).",
)
@click.option("-v", "--verbose", count=True, help="Log what changes (-v) and every live update sent (-vv).")
def dashboard(lab: str, port: int, host: str, verbose: int) -> None:
    """Serve the lab's dashboard: hosts and what runs on each, namespaces, attestation, control-plane health.

    Log in with a lab user's name and password (what that user may read is what they see), or as the
    lab administrator with the link printed at start. Ctrl-C stops it.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        access = for_lab(lab)
    except NestlabError as exc:
        _fail(exc)
    sessions = Sessions(access.server, access.admin)
    application = dashboard_app.build(sessions, access.watcher)

    def ready(url: str) -> None:
        click.echo(f"nestlab dashboard of lab {lab}: {url}/")
        click.echo(f"lab administrator (keep this link private): {url}/login/admin?key={sessions.admin_key}")
        if not _loopback(host):
            click.echo(
                f"warning: listening on {host} without TLS: passwords and session cookies cross the"
                " network in clear",
                err=True,
            )
        sys.stdout.flush()

    try:
        asyncio.run(serve(application, host, port, ready))
    except NestlabError as exc:
        _fail(exc)
