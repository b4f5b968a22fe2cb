"""``nestlab namespace create|set|delete|list``: vSphere Namespaces in one command each.

Thin: options are parsed here, the work is :mod:`nestlab.tenancy.namespaceapi`'s. ``create`` and
``set`` take the same options; ``set`` changes only the ones given (``none`` removes a limit, a
default, or everyone from a role; ``--count configmaps=none`` one count).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from nestlab.errors import NestlabError
from nestlab.tenancy import namespaceapi
from nestlab.tenancy import namespaces as plan

F = TypeVar("F", bound=Callable[..., Any])
_LAB = click.option(
    "--name", "--lab", "lab", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab."
)
_LIMITS = (
    ("--cpu", "CPU limit of all its containers together (2, 1500m)."),
    ("--memory", "Memory limit of all its containers together (4Gi)."),
    ("--storage", "Storage all its volume claims may request together (20Gi)."),
    ("--pods", "How many pods it may hold."),
    ("--default-cpu", f"CPU limit of a container that names none (default {plan.DEFAULT_CPU} with --cpu)."),
    (
        "--default-memory",
        f"Memory limit of a container that names none (default {plan.DEFAULT_MEMORY} with --memory).",
    ),
)
_SUBJECTS = (
    (
        "--view",
        "view",
        "A user who may read it (repeatable; system:serviceaccount:NS:NAME for a service account).",
    ),
    ("--edit", "edit", "A user who may create and change workloads in it (repeatable)."),
    ("--admin", "admin", "A user who may also manage its RoleBindings (repeatable)."),
    ("--view-group", "view_groups", "A group whose members may read it (repeatable)."),
    ("--edit-group", "edit_groups", "A group whose members may edit it (repeatable)."),
    ("--admin-group", "admin_groups", "A group whose members may administer it (repeatable)."),
)


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


_COUNT_HELP = (
    "How many objects of a kind it may hold, as RESOURCE=N (repeatable): configmaps=20, "
    "deployments.apps=5; a ResourceQuota count/<resource> (services, secrets, configmaps and "
    "persistentvolumeclaims by their plain names)."
)


def _options(command: F) -> F:
    """The options ``create`` and ``set`` share, plus the lab's ``--name``."""
    for flag, dest, text in reversed(_SUBJECTS):
        command = click.option(flag, dest, multiple=True, metavar="NAME", help=text)(command)
    command = click.option("--count", "counts", multiple=True, metavar="RESOURCE=N", help=_COUNT_HELP)(
        command
    )
    for flag, text in reversed(_LIMITS):
        command = click.option(flag, default=None, metavar="QUANTITY", help=text)(command)
    return _LAB(command)


def _changes(values: dict[str, Any], *, allow_unset: bool) -> dict[str, Any]:
    """Option values as Settings fields: a repeatable option not given is None (no change);
    ``--count`` options become quota key -> N."""
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key == "counts":
            changes[key] = plan.parse_counts(value, allow_unset=allow_unset)
        elif isinstance(value, tuple):
            changes[key] = None if not value else tuple(v for v in value if v != plan.UNSET)
        else:
            changes[key] = value
    return changes


def _say(line: str) -> None:
    click.echo(line, err=line.startswith(namespaceapi.WARNING))


@click.group("namespace")
def namespace() -> None:
    """vSphere Namespaces: a namespace with its limits, defaults, permissions and registry project."""


@namespace.command("create")
@click.argument("namespace_name", metavar="NAME")
@_options
def create(namespace_name: str, lab: str, **options: Any) -> None:
    """Create (or bring up to date) vSphere Namespace NAME; running it twice changes nothing."""
    try:
        values = _changes(options, allow_unset=False)
        for key in ("cpu", "memory", "storage", "pods", "default_cpu", "default_memory"):
            plan.check_quantity(f"--{key.replace('_', '-')}", values[key], allow_unset=False)
        settings = plan.merged(plan.Settings(), {k: v for k, v in values.items() if v is not None})
        done = namespaceapi.create_in(lab, namespace_name, settings, _say)
    except NestlabError as exc:
        _fail(exc)
    if not done:
        click.echo(f"namespace {namespace_name} unchanged")


@namespace.command("set")
@click.argument("namespace_name", metavar="NAME")
@_options
def set_(namespace_name: str, lab: str, **options: Any) -> None:
    """Change only the given settings of vSphere Namespace NAME (`none` removes one)."""
    try:
        values = _changes(options, allow_unset=True)
        for key in ("cpu", "memory", "storage", "pods", "default_cpu", "default_memory"):
            plan.check_quantity(f"--{key.replace('_', '-')}", values[key], allow_unset=True)
        done = namespaceapi.update_in(lab, namespace_name, values, _say)
    except NestlabError as exc:
        _fail(exc)
    if not done:
        click.echo(f"namespace {namespace_name} unchanged")


@namespace.command("delete")
@click.argument("namespace_name", metavar="NAME")
@_LAB
@click.option(
    "--timeout",
    default=namespaceapi.DELETE_TIMEOUT_S,
    show_default=True,
    type=float,
    help="Seconds to wait for the namespace to be gone.",
)
def delete(namespace_name: str, lab: str, timeout: float) -> None:
    """Delete vSphere Namespace NAME with everything in it, and wait until it is gone."""
    try:
        gone = namespaceapi.delete_in(lab, namespace_name, _say, timeout)
    except NestlabError as exc:
        _fail(exc)
    if not gone:
        click.echo(f"namespace {namespace_name} does not exist")


@namespace.command("list")
@_LAB
def list_(lab: str) -> None:
    """Every vSphere Namespace: quota used/limit and who may view, edit and administer it."""
    try:
        rows = namespaceapi.list_in(lab)
    except NestlabError as exc:
        _fail(exc)
    click.echo(plan.table(rows))
