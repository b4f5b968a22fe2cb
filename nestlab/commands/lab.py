"""The lab's own commands: plan, up, down, status, provision, verify, attest, kubeconfig.

Thin: each parses its arguments and calls one function of :mod:`nestlab.lifecycle`. The ``nestlab``
group (:mod:`nestlab.cli`) imports this module only when one of them runs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nestlab import lifecycle, paths, progress
from nestlab.commands.output import NAME_HELP, console, fail, printer
from nestlab.errors import NestlabError, UsageError
from nestlab.render import render_namespaces, render_plan, render_status
from nestlab.runtime import machine
from nestlab.spec import load_spec, make_plan, parse_spec
from nestlab.spec.model import Lab
from nestlab.spec.precheck import Verdict, precheck
from nestlab.tenancy import namespaceapi


def _lab(spec: Path | None) -> Lab:
    """The spec file's lab, or the teaching lab (all defaults) when no file is given."""
    return load_spec(spec) if spec is not None else parse_spec(lifecycle.DEFAULT_SPEC, source="(defaults)")


@click.command()
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
        fail(exc)
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
        render_plan(console(), lab_plan, capacity, checks)
    failed = [c.resource for c in checks if c.verdict is Verdict.FAIL]
    if failed:
        fail(
            UsageError(
                f"the pre-check fails ({', '.join(failed)}): `nestlab up` refuses this lab unless --force"
            )
        )


@click.command()
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
            outputs = lifecycle.up_libvirt(spec, image, printer())
            click.echo(json.dumps(outputs, indent=2, default=str))
            return
        with progress.for_console(console()) as shown:
            report = lifecycle.up(spec, name, shown, force=force, full=full)
    except NestlabError as exc:
        fail(exc)
    if report.nothing_to_do:
        click.echo(f"lab {report.name} is up; nothing to do ({report.seconds:.0f}s)")
    else:
        click.echo(
            f"lab {report.name} is up: {len(report.started)} node(s) started, "
            f"{report.changed} change(s) applied ({report.seconds:.0f}s)"
        )


@click.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab to remove.")
def down(name: str) -> None:
    """Remove every process, mount, bridge and file of a lab (the image cache stays)."""
    try:
        result = lifecycle.down(name)
    except NestlabError as exc:
        fail(exc)
    stopped, routes = len(result.stopped), len(result.routes_removed)
    click.echo(f"lab {name} removed: {stopped} node(s) stopped, {routes} route(s) removed")


@click.command()
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
    shown_on = console()

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
        with shown_on.capture() as captured:
            render_status(shown_on, name, rows)
            render_namespaces(shown_on, namespaceapi.summary(name))
        return captured.get()

    try:
        if watch:
            progress.watch(snapshot, shown_on, interval=interval)
        else:
            click.echo(snapshot(), nl=False)
    except NestlabError as exc:
        fail(exc)


@click.command()
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
        changed = lifecycle.provision(spec, inventory, printer(), name)
    except NestlabError as exc:
        fail(exc)
    click.echo(f"provisioned: {changed} change(s) applied")


@click.command()
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
        fail(exc)
    click.echo(f"verify passed; report: {report}")


@click.command()
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
        fail(exc)
    click.echo(result.stdout, nl=False)
    click.echo(result.stderr, nl=False, err=True)
    sys.exit(result.returncode)


@click.command()
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
@click.option("--path", "as_path", is_flag=True, help="Print the file's path (for KUBECONFIG=...).")
def kubeconfig(name: str, as_path: bool) -> None:
    """Print the lab-admin kubeconfig (API through the VIP), or its path with --path."""
    try:
        path = lifecycle.kubeconfig(name)
    except NestlabError as exc:
        fail(exc)
    click.echo(str(path) if as_path else path.read_text(encoding="utf-8"), nl=as_path)
