"""The ``nestlab`` command: thin; each command parses its arguments and calls one library function.

Errors nestlab raises on purpose (:class:`~nestlab.errors.NestlabError`) become one line per
problem on stderr and the error's exit code (2 for bad input); they never show a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from nestlab import __version__, lifecycle, maintenance, paths, progress
from nestlab.commands import audit, dashboard, drill, exercise, image, namespace, users
from nestlab.errors import NestlabError, UsageError
from nestlab.render import render_namespaces, render_plan, render_status
from nestlab.runtime import machine
from nestlab.spec import load_spec, make_plan, parse_spec
from nestlab.spec.model import Lab
from nestlab.spec.precheck import Verdict, precheck
from nestlab.tenancy import namespaceapi

PLANNED = "Benchmarks are scripts in bench/ (see README), not a command."
DEFAULT_SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\n"
NAME_HELP = "The lab's name (default: the spec's metadata.name, else 'default')."


def _fail(error: NestlabError) -> NoReturn:
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for line in str(error).splitlines() or [type(error).__name__]:
        err.print(f"[bold red]error:[/] {line}", markup=True)
    sys.exit(error.exit_code)


def _console() -> Console:
    """Standard output; 120 columns when it is not a terminal, so piped tables stay readable."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _lab(spec: Path | None) -> Lab:
    """The spec file's lab, or the teaching lab (all defaults) when no file is given."""
    return load_spec(spec) if spec is not None else parse_spec(DEFAULT_SPEC, source="(defaults)")


@click.group(epilog=PLANNED, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nestlab")
def cli() -> None:
    """nestlab: learn how a hypervisor becomes a Kubernetes platform by running one."""


@cli.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def plan(spec: Path | None, as_json: bool) -> None:
    """Show placement, addresses, failure domains and the resource pre-check of SPEC.

    Without SPEC, the teaching lab: 3 hosts, 3 control-plane nodes, 2 load balancers, a depot.
    """
    try:
        lab_plan = make_plan(_lab(spec))
        capacity = machine.capacity(paths.home())
    except NestlabError as exc:
        _fail(exc)
    checks = precheck(lab_plan, capacity)
    if as_json:
        document = lab_plan.to_dict()
        document["precheck"] = {
            "accelerator": {"name": capacity.accelerator, "reason": capacity.accelerator_reason},
            "resources": [
                {"resource": c.resource, "wanted": c.wanted, "available": c.available,
                 "unit": c.unit, "verdict": str(c.verdict), "note": c.note}
                for c in checks
            ],
        }  # fmt: skip
        click.echo(json.dumps(document, indent=2))
    else:
        render_plan(_console(), lab_plan, capacity, checks)
    failed = [c.resource for c in checks if c.verdict is Verdict.FAIL]
    if failed:
        _fail(
            UsageError(
                f"the pre-check fails ({', '.join(failed)}): `nestlab up` refuses this lab unless --force"
            )
        )


def _progress() -> Callable[[str], None]:
    console = _console()

    def show(message: str) -> None:
        console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}", markup=True, highlight=False)

    return show


@cli.command()
@click.argument("spec", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--name", help=NAME_HELP)
@click.option(
    "--substrate",
    type=click.Choice(["local", "libvirt"]),
    default=None,
    help="Where nodes run (default: the spec's substrate).",
)
@click.option("--image", default="", help="libvirt only: the node qcow2 image (path or URL).")
@click.option("--force", is_flag=True, help="Go on although the pre-check says the lab does not fit.")
@click.option(
    "--full",
    is_flag=True,
    help="Run the playbook on every node, even those unchanged since their last provisioning.",
)
def up(
    spec: Path | None, name: str | None, substrate: str | None, image: str, *, force: bool, full: bool
) -> None:
    """Stand the lab of SPEC up (or complete it); a second run changes nothing.

    On a terminal, long steps (node image, pod kernel, provisioning plays, image pushes) show live
    progress; elsewhere one line per step change. The first line names the log files."""
    try:
        if substrate == "libvirt":
            outputs = lifecycle.up_libvirt(spec, image, _progress())
            click.echo(json.dumps(outputs, indent=2, default=str))
            return
        with progress.for_console(_console()) as shown:
            report = lifecycle.up(spec, name, shown, force=force, full=full)
    except NestlabError as exc:
        _fail(exc)
    if report.nothing_to_do:
        click.echo(f"lab {report.name} is up; nothing to do ({report.seconds:.0f}s)")
    else:
        click.echo(
            f"lab {report.name} is up: {len(report.started)} node(s) started, "
            f"{report.changed} change(s) applied ({report.seconds:.0f}s)"
        )


@cli.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab to remove.")
def down(name: str) -> None:
    """Remove every process, mount, bridge and file of a lab (the image cache stays)."""
    try:
        result = lifecycle.down(name)
    except NestlabError as exc:
        _fail(exc)
    stopped, routes = len(result.stopped), len(result.routes_removed)
    click.echo(f"lab {name} removed: {stopped} node(s) stopped, {routes} route(s) removed")


@cli.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option(
    "--watch",
    is_flag=True,
    help="Redraw every --interval seconds until Ctrl-C (not on a terminal: print each change).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.5),
    default=2.0,
    show_default=True,
    help="Seconds between two looks with --watch.",
)
def status(name: str, as_json: bool, watch: bool, interval: float) -> None:
    """Every node: role, placement, address, state, reachable over SSH, and each host's latest attestation."""
    console = _console()

    def snapshot() -> str:
        nodes = lifecycle.status(name)
        verdicts = lifecycle.attestation_summary(name)
        unknown = "unknown (API unreachable)"
        rows = [
            {"name": n.name, "role": str(n.role), "placedOn": n.placed_on, "address": str(n.address),
             "state": n.state, "reachable": n.reachable,
             "attestation": verdicts.get(n.name, unknown) if str(n.role) == "host" else ""}
            for n in nodes
        ]  # fmt: skip
        if as_json:
            return json.dumps(rows, indent=2) + "\n"
        with console.capture() as captured:
            render_status(console, name, rows)
            render_namespaces(console, namespaceapi.summary(name))
        return captured.get()

    try:
        if watch:
            progress.watch(snapshot, console, interval=interval)
        else:
            click.echo(snapshot(), nl=False)
    except NestlabError as exc:
        _fail(exc)


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("node")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def ssh(node: str, command: tuple[str, ...], name: str) -> None:
    """Log in to NODE as root, or run COMMAND there (nestlab ssh cp-1 -- etcdctl member list)."""
    try:
        code = lifecycle.ssh(name, node, list(command))
    except NestlabError as exc:
        _fail(exc)
    sys.exit(code)


@cli.group()
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
        stopped = lifecycle.node_stop(name, node_name, hard=hard)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"stopped: {', '.join(stopped)}")


@node.command("start")
@click.argument("node_name", metavar="NODE")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def node_start(node_name: str, name: str) -> None:
    """Start NODE (and, for a host, every node placed on it); waits for SSH."""
    try:
        started = lifecycle.node_start(name, node_name, _progress())
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"running: {', '.join(started)}")


@cli.group()
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
        result = maintenance.enter(name, host_name, timeout, _progress())
    except NestlabError as exc:
        _fail(exc)
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
        _fail(exc)
    click.echo(
        f"{host_name} left maintenance mode" if changed else f"{host_name} was not in maintenance mode"
    )


@cli.command()
@click.option("--spec", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The lab spec.")
@click.option(
    "--inventory",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Where the inventory goes; its directory is the lab's state directory.",
)
@click.option("--name", help=NAME_HELP)
def provision(spec: Path, inventory: Path, name: str | None) -> None:
    """Provision nodes that already run (the step `pulumi up` runs after creating the VMs)."""
    try:
        changed = lifecycle.provision(spec, inventory, _progress(), name)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"provisioned: {changed} change(s) applied")


@cli.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option(
    "--inventory",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Check the lab of this inventory instead (as `pulumi up` does).",
)
def verify(name: str, inventory: Path | None) -> None:
    """Run the testinfra checks (tests/infra) against every node of the lab over SSH."""
    try:
        report = lifecycle.verify(name, inventory)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"verify passed; report: {report}")


@cli.command()
@click.argument("host", required=False)
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON.")
def attest(host: str | None, name: str, as_json: bool) -> None:
    """Attest every host (or HOST) now: quote, event log, policy; exit 0 only if all passed.

    The verifier runs on the control plane; its verdicts also become each Node's Attested condition
    (and a taint on a host that failed)."""
    try:
        result = lifecycle.attest(name, host, as_json)
    except NestlabError as exc:
        _fail(exc)
    click.echo(result.stdout, nl=False)
    click.echo(result.stderr, nl=False, err=True)
    sys.exit(result.returncode)


@cli.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option("--path", "as_path", is_flag=True, help="Print the file's path (for KUBECONFIG=...).")
def kubeconfig(name: str, as_path: bool) -> None:
    """Print the lab-admin kubeconfig (API through the VIP), or its path with --path."""
    try:
        path = lifecycle.kubeconfig(name)
    except NestlabError as exc:
        _fail(exc)
    click.echo(str(path) if as_path else path.read_text(encoding="utf-8"), nl=as_path)


# Tenancy: users and login (the Token Exchange Service), vSphere Namespaces, the audit log.
for _command in (
    users.user,
    users.login,
    users.credential,
    namespace.namespace,
    audit.audit,
    image.image,
    dashboard.dashboard,
    exercise.exercise,
    drill.drill,
):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point."""
    cli()
