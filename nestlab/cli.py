"""The ``nestlab`` command: a group that loads each command's module only when that command runs.

Every command lives in a module of :mod:`nestlab.commands`, named in :data:`COMMANDS`. Importing
all of them costs over a second (the API client, provisioning, the dashboard's templates); the
kubectl credential plugin (``nestlab credential``) runs on every kubectl call of a lab user, and
the lab's tests call ``nestlab`` hundreds of times. Errors nestlab raises on purpose
(:class:`~nestlab.errors.NestlabError`) become one line per problem on stderr and the error's exit
code (2 for bad input); they never show a traceback.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from nestlab import __version__

PLANNED = "Benchmarks are scripts in bench/ (see README), not a command."

COMMANDS = {
    # the lab's lifecycle
    "plan": "nestlab.commands.lab:plan",
    "up": "nestlab.commands.lab:up",
    "down": "nestlab.commands.lab:down",
    "status": "nestlab.commands.lab:status",
    "provision": "nestlab.commands.lab:provision",
    "verify": "nestlab.commands.lab:verify",
    "attest": "nestlab.commands.lab:attest",
    "kubeconfig": "nestlab.commands.lab:kubeconfig",
    # single nodes
    "ssh": "nestlab.commands.nodes:ssh",
    "node": "nestlab.commands.nodes:node",
    "host": "nestlab.commands.host:host",
    # tenancy: users and login (the Token Exchange Service), vSphere Namespaces, the audit log
    "user": "nestlab.commands.users:user",
    "login": "nestlab.commands.users:login",
    "credential": "nestlab.commands.users:credential",
    "namespace": "nestlab.commands.namespace:namespace",
    "audit": "nestlab.commands.audit:audit",
    "image": "nestlab.commands.image:image",
    "dashboard": "nestlab.commands.dashboard:dashboard",
    "exercise": "nestlab.commands.exercise:exercise",
    "drill": "nestlab.commands.drill:drill",
}
"""Command name -> ``module:attribute`` of its click command or group."""


class LazyGroup(click.Group):
    """A click group whose subcommands are imported from :data:`COMMANDS` when first looked up."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command) or command.name != cmd_name:
                raise TypeError(f"{self.lazy[cmd_name]} is not the click command {cmd_name!r}")
            self.add_command(command)
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=LazyGroup,
    lazy=COMMANDS,
    epilog=PLANNED,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="nestlab")
def cli() -> None:
    """nestlab: learn how a hypervisor becomes a Kubernetes platform by running one."""


def main() -> None:
    """Console-script entry point."""
    cli()
