"""The commands that reach one node: ``ssh`` and ``node stop|start``.

Thin, as :mod:`nestlab.commands.lab`, over :mod:`nestlab.labnodes` only: loaded by :mod:`nestlab.cli`
when one of them runs, they start in a fraction of the time the lifecycle's imports take.
"""

from __future__ import annotations

import sys

import click

from nestlab import labnodes
from nestlab.commands.output import fail, printer
from nestlab.errors import NestlabError


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def ssh(node: str, command: tuple[str, ...], name: str) -> None:
    """Log in to NODE as root, or run COMMAND there (nestlab ssh cp-1 -- etcdctl member list)."""
    try:
        code = labnodes.ssh(name, node, list(command))
    except NestlabError as exc:
        fail(exc)
    sys.exit(code)


@click.group()
def node() -> None:
    """Stop or start a node; a host takes the nodes placed on it (its failure domain) along."""


@node.command("stop")
@click.argument("node_name", metavar="NODE")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option(
    "--hard",
    is_flag=True,
    help="Pull the power: nothing on the node shuts down cleanly (a real failure), not a clean poweroff.",
)
def node_stop(node_name: str, name: str, hard: bool) -> None:
    """Stop NODE (and, for a host, every node placed on it)."""
    try:
        stopped = labnodes.node_stop(name, node_name, hard=hard)
    except NestlabError as exc:
        fail(exc)
    click.echo(f"stopped: {', '.join(stopped)}")


@node.command("start")
@click.argument("node_name", metavar="NODE")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def node_start(node_name: str, name: str) -> None:
    """Start NODE (and, for a host, every node placed on it); waits for SSH."""
    try:
        started = labnodes.node_start(name, node_name, printer())
    except NestlabError as exc:
        fail(exc)
    click.echo(f"running: {', '.join(started)}")
