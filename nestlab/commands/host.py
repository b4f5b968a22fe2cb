"""``nestlab host maintenance enter|exit``: vSphere's maintenance mode for a host.

Thin, as :mod:`nestlab.commands.lab`: the work is in :mod:`nestlab.maintenance`.
"""

from __future__ import annotations

import click

from nestlab import maintenance
from nestlab.commands.output import fail, printer
from nestlab.errors import NestlabError


@click.group()
def host() -> None:
    """Operations on a host (an ESXi host of vSphere with Kubernetes)."""


@host.group("maintenance")
def host_maintenance() -> None:
    """Enter or exit maintenance mode (vSphere's Enter/Exit Maintenance Mode)."""


@host_maintenance.command("enter")
@click.argument("host_name", metavar="HOST")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=maintenance.DEFAULT_TIMEOUT_S,
    show_default=True,
    help="Seconds to wait for the host to empty before giving up (it stays cordoned).",
)
def host_maintenance_enter(host_name: str, name: str, timeout: float) -> None:
    """Cordon HOST, evict every pod on it and wait until none is left.

    Evictions go through the pods/eviction API, so PodDisruptionBudgets hold: a pod whose budget
    allows no disruption now is retried every few seconds, and the budget that blocks is named.
    Unlike `kubectl drain` (which refuses pods without a controller unless --force), every pod is
    evicted, as vSphere powers off every vSphere Pod of a host entering maintenance mode: a pod
    with no controller is NOT recreated elsewhere (the progress line says so). Exits 1, naming the
    blocking budget, when HOST still holds pods after --timeout seconds.
    """
    try:
        result = maintenance.enter(name, host_name, timeout, printer())
    except NestlabError as exc:
        fail(exc)
    click.echo(
        f"{host_name} is in maintenance mode: {len(result.evicted)} pod(s) evicted, "
        f"no pod left ({result.seconds:.0f}s)"
    )


@host_maintenance.command("exit")
@click.argument("host_name", metavar="HOST")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def host_maintenance_exit(host_name: str, name: str) -> None:
    """Uncordon HOST: the scheduler may place pods there again (evicted pods do not move back)."""
    try:
        changed = maintenance.leave(name, host_name)
    except NestlabError as exc:
        fail(exc)
    click.echo(
        f"{host_name} left maintenance mode" if changed else f"{host_name} was not in maintenance mode"
    )
