"""``nestlab audit``: who did what, from the API servers' audit logs on every control-plane node.

Thin: parses the options and calls :func:`nestlab.auditread.read_lab`; the table, the filters and
the merge live there.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click

from nestlab import auditread
from nestlab.errors import NestlabError


@click.command("audit")
@click.option("--user", default="", help="Only requests by USER (or made as USER through impersonation).")
@click.option("--namespace", "-n", default="", help="Only requests on objects in NAMESPACE.")
@click.option(
    "--verb", default="", help="Only this verb (get, list, watch, create, update, patch, delete...)."
)
@click.option(
    "--since", default="", help="Only requests newer than a duration (10m, 1h) or an RFC 3339 time."
)
@click.option("--json", "as_json", is_flag=True, help="Print the audit Events as a JSON list.")
@click.option("--name", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab.")
def audit(*, user: str, namespace: str, verb: str, since: str, as_json: bool, name: str) -> None:
    """Who did what: the audit Events of every control-plane node, merged by time.

    One row per request: TIME USER VERB RESOURCE NAMESPACE NAME CODE; a request made through
    impersonation shows as "bob (as alice)".
    """
    try:
        query = auditread.Query(
            user=user,
            namespace=namespace,
            verb=verb,
            since=auditread.parse_since(since, datetime.now(UTC)) if since else None,
        )
        report = auditread.read_lab(name, query)
    except NestlabError as exc:
        for line in str(exc).splitlines():
            click.echo(f"error: {line}", err=True)
        sys.exit(exc.exit_code)
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(report.events, indent=2))
    elif report.events:
        click.echo(auditread.table(report.events))
    else:
        click.echo("No audit events match.", err=True)
