"""The ``nestlab`` command: thin; each command parses its arguments and calls one library function.

Errors nestlab raises on purpose (:class:`~nestlab.errors.NestlabError`) become one line per
problem on stderr and the error's exit code (2 for bad input); they never show a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console

from nestlab import __version__, paths
from nestlab.errors import NestlabError
from nestlab.render import render_plan
from nestlab.runtime import machine
from nestlab.spec import load_spec, make_plan, parse_spec
from nestlab.spec.model import Lab
from nestlab.spec.precheck import precheck

PLANNED = "Coming with later work (not available yet): up, down, status, ssh, node, verify, attest, bench."
DEFAULT_SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\n"


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
        return
    render_plan(_console(), lab_plan, capacity, checks)


def main() -> None:
    """Console-script entry point."""
    cli()
