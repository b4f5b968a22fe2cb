"""Rich rendering of what the CLI shows; kept apart so cli.py stays a list of commands."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from nestlab.spec.plan import Plan
from nestlab.spec.precheck import Capacity, Line, Verdict

_VERDICT_STYLE = {Verdict.OK: "green", Verdict.WARN: "yellow", Verdict.FAIL: "bold red"}


def size(mib: int) -> str:
    """A MiB count the way people write it: ``4 GiB``, ``512 MiB``."""
    return f"{mib // 1024} GiB" if mib % 1024 == 0 else f"{mib} MiB"


def render_plan(console: Console, plan: Plan, capacity: Capacity, checks: list[Line]) -> None:
    """The ``nestlab plan`` screen: nodes, failure domains, pre-check, warnings."""
    lab = plan.lab
    console.print(
        f"[bold]Lab {lab.name!r}[/] on the {lab.substrate.type} substrate  "
        f"VIP [cyan]{plan.vip}[/]  management {lab.networks.management}  pods {lab.networks.pods}  "
        f"pod kernel {lab.pod_kernel}"
    )
    nodes = Table(title="Nodes and placement", title_justify="left")
    for column in ("node", "role", "address", "placed on", "cpu", "memory", "disk", "pod subnet"):
        nodes.add_column(column)
    if len(lab.substrate.uris) > 1:
        nodes.add_column("hypervisor")
    for node in plan.nodes:
        row = [
            node.name, str(node.role), str(node.address), node.placed_on, str(node.size.cpu),
            size(node.size.memory_mib), size(node.size.disk_mib), str(node.pod_subnet or ""),
        ]  # fmt: skip
        if len(lab.substrate.uris) > 1:
            row.append(lab.substrate.uris[node.hypervisor])
        nodes.add_row(*row)
    console.print(nodes)

    domains = Table(title="Failure domains (stopping a host stops these)", title_justify="left")
    domains.add_column("host")
    domains.add_column("nodes")
    for host, members in plan.failure_domains().items():
        domains.add_row(host, ", ".join(members))
    console.print(domains)

    pre = Table(title="Pre-check against this machine", title_justify="left")
    for column in ("resource", "lab wants", "machine has", "verdict", "note"):
        pre.add_column(column)
    for c in checks:
        style = _VERDICT_STYLE[c.verdict]
        wanted, available = (
            (size(c.wanted), size(c.available)) if c.unit == "MiB"
            else (f"{c.wanted} {c.unit}", f"{c.available} {c.unit}")
        )  # fmt: skip
        pre.add_row(c.resource, wanted, available,
                    f"[{style}]{c.verdict}[/]", c.note)  # fmt: skip
    console.print(pre)
    console.print(
        f"accelerator for pod microVMs: [bold]{capacity.accelerator}[/] ({capacity.accelerator_reason})"
    )
    for warning in plan.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def render_status(console: Console, name: str, rows: list[dict[str, object]]) -> None:
    """The ``nestlab status`` table."""
    table = Table(title=f"Lab {name}", title_justify="left")
    for column in ("node", "role", "placed on", "address", "state", "ssh", "attestation"):
        table.add_column(column)
    for row in rows:
        state = str(row["state"])
        style = "green" if state == "running" else "yellow" if state in ("stopped", "stopping") else "red"
        reach = "[green]yes[/]" if row["reachable"] else "[red]no[/]"
        verdict = str(row.get("attestation", ""))
        shown = (
            f"[green]{verdict}[/]"
            if verdict.startswith("passed")
            else f"[red]{verdict}[/]"
            if verdict.startswith("FAILED")
            else verdict
        )
        table.add_row(str(row["name"]), str(row["role"]), str(row["placedOn"]), str(row["address"]),
                      f"[{style}]{state}[/]", reach, shown)  # fmt: skip
    console.print(table)


def render_namespaces(console: Console, rows: list[dict[str, str]]) -> None:
    """The vSphere Namespaces under ``nestlab status``: quota used/limit and who holds which role.

    ``rows`` are :func:`nestlab.tenancy.namespaceapi.summary`'s (one dict per namespace, keyed by
    column); nothing is printed when there are none (or the API did not answer).
    """
    if not rows:
        return
    columns = list(rows[0])
    table = Table(title="vSphere Namespaces (used/limit)", title_justify="left")
    for column in columns:
        table.add_column(column.lower())
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)
