"""``nestlab user``, ``nestlab login`` and ``nestlab credential``: the lab's users and their logins.

The vSphere counterparts are the SSO users an administrator adds, ``kubectl vsphere login`` and
the kubeconfig context it writes. Thin: parsing, password prompts and printing here; the work in
:mod:`nestlab.identity_client` (the API) and :mod:`nestlab.logins` (the files).

Exposed for ``nestlab.cli``: the group :data:`user` and the commands :data:`login` and
:data:`credential` (``cli.add_command`` each).
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

import click

from nestlab import logins
from nestlab.errors import NestlabError, UsageError
from nestlab.identity_client import IdentityClient, Lab, LabTransport, Transport
from nestlab.paths import LabFiles

LAB_HELP = "The lab."


@dataclass(frozen=True)
class Connect:
    """How the commands reach a lab's API; tests pass another through click's ``obj``."""

    transport: Callable[[Lab], Transport] = LabTransport


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


def _client(lab: Lab) -> IdentityClient:
    connect = click.get_current_context().find_object(Connect) or Connect()
    return IdentityClient(connect.transport(lab))


def interactive() -> bool:
    """Whether a person can be asked for a password (standard input is a terminal)."""
    return sys.stdin.isatty()


def read_password(from_stdin: bool, *, confirm: bool) -> str:
    """The password: standard input's text (one trailing newline dropped, as ``docker login
    --password-stdin``) or a hidden prompt on a terminal, asked twice when ``confirm``."""
    if from_stdin:
        return sys.stdin.read().removesuffix("\n").removesuffix("\r")
    if not interactive():
        raise UsageError("no terminal to ask for the password on: pipe it in with --password-stdin")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=confirm))


@click.group("user")
def user() -> None:
    """Lab users: who may log in (the Token Exchange Service's identity store)."""


@user.command("add")
@click.argument("name")
@click.option("--group", "-g", "groups", multiple=True, help="A group the user is in (repeatable).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def user_add(name: str, groups: tuple[str, ...], password_stdin: bool, lab: str) -> None:
    """Add user NAME (asks for a password twice on a terminal)."""
    try:
        where = Lab.named(lab)
        password = read_password(password_stdin, confirm=True)
        added = _client(where).add(name, list(groups), password)
    except NestlabError as exc:
        _fail(exc)
    in_groups = ", ".join(added.get("groups") or []) or "no groups"
    click.echo(
        f"user {name} added to lab {lab} ({in_groups}); they log in with: {logins.login_hint(name, lab)}"
    )


@user.command("remove")
@click.argument("name")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def user_remove(name: str, lab: str) -> None:
    """Remove user NAME: their tokens stop working at once."""
    try:
        where = Lab.named(lab)
        _client(where).remove(name)
        logins.forget(where.files, name)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"user {name} removed from lab {lab}")


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def user_passwd(name: str, password_stdin: bool, lab: str) -> None:
    """Set user NAME's password; the tokens they hold stop working."""
    try:
        where = Lab.named(lab)
        password = read_password(password_stdin, confirm=True)
        _client(where).set_password(name, password)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"password of {name} changed; their earlier tokens are revoked")


@user.command("set")
@click.argument("name")
@click.option(
    "--group", "-g", "groups", multiple=True, help="A group the user is in (repeatable; replaces the groups)."
)
@click.option("--no-groups", is_flag=True, help="Take the user out of every group.")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def user_set(name: str, groups: tuple[str, ...], no_groups: bool, lab: str) -> None:
    """Replace user NAME's groups with the --group options given (running it twice changes nothing);
    the user's tokens carry the new groups at once."""
    try:
        if bool(groups) == no_groups:
            raise UsageError("give the groups with --group G (repeatable), or --no-groups to remove them all")
        client = _client(Lab.named(lab))
        wanted = list(dict.fromkeys(groups))
        current = client.get(name).get("groups") or []
        if sorted(current) == sorted(wanted):
            click.echo(f"user {name} unchanged ({', '.join(current) or 'no groups'})")
            return
        changed = client.set_groups(name, wanted)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"groups of user {name}: {', '.join(changed.get('groups') or []) or 'none'}")


@user.command("revoke")
@click.argument("name")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def user_revoke(name: str, lab: str) -> None:
    """Revoke every token user NAME holds (they must log in again)."""
    try:
        _client(Lab.named(lab)).revoke(name)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"tokens of {name} revoked; they log in again with: {logins.login_hint(name, lab)}")


@user.command("list")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(lab: str, as_json: bool) -> None:
    """List the lab's users and their groups."""
    try:
        users = _client(Lab.named(lab)).list()
    except NestlabError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(users, indent=2))
        return
    rows = [("NAME", "GROUPS", "CREATED")]
    rows += [
        (str(u.get("name")), ",".join(u.get("groups") or []) or "<none>", str(u.get("createdAt")))
        for u in users
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        click.echo(f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]}")


@click.command("login")
@click.argument("name", metavar="USER")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--ttl", default="10h", show_default=True, help="How long the token lasts (10h, 90m, 600s).")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
def login(name: str, password_stdin: bool, ttl: str, lab: str) -> None:
    """Log USER in: a short-lived token, and a kubeconfig that uses it (like kubectl vsphere login)."""
    try:
        seconds = logins.parse_duration(ttl)
        where = Lab.named(lab)
        password = read_password(password_stdin, confirm=False)
        token = _client(where).login(name, password, seconds)
        path = logins.save_login(where.files, lab, token, where.cluster)
    except NestlabError as exc:
        _fail(exc)
    click.echo(f"logged in to lab {lab} as {name}; the token expires at {token.expiration}")
    click.echo(f"kubeconfig: {path}")
    click.echo(f"  export KUBECONFIG={path}")


@click.command("credential")
@click.option("--lab", envvar="NESTLAB_LAB", default="default", show_default=True, help=LAB_HELP)
@click.option("--user", "name", required=True, help="The user who logged in.")
def credential(lab: str, name: str) -> None:
    """kubectl's exec credential plugin: print USER's cached login token as an ExecCredential."""
    try:
        files = LabFiles.named(lab)
        version = logins.requested_api_version(os.environ.get("KUBERNETES_EXEC_INFO"))
        now = datetime.datetime.now(datetime.UTC)
        answer = logins.exec_credential(logins.read_cache(files, name), name, lab, now, version)
    except NestlabError as exc:
        _fail(exc)
    click.echo(json.dumps(answer))
