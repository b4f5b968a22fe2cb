"""``nestlab image push``: bring an image into a namespace's registry project (Harbor's push).

vSphere with Kubernetes gives each namespace a Harbor project that its editors push to with
``docker push``; here the depot's registry plays Harbor and the project is the namespace's name
(``<depot>:5000/<namespace>/<name>:<tag>``). Thin: parsing and printing here, the work in
:mod:`nestlab.imagepush`. Exposed for ``nestlab.cli``: the group :data:`image`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from rich.console import Console

from nestlab import imagepush, progress
from nestlab.agent.registry import RegistryClient, RegistryError, parse_ref
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles

DEPOT_REGISTRY_PORT = 5000  # roles/depot's depot_registry_port (nestlab.lifecycle.DEPOT_REGISTRY_PORT)


def _fail(error: NestlabError) -> NoReturn:
    for line in str(error).splitlines() or [type(error).__name__]:
        click.echo(f"error: {line}", err=True)
    sys.exit(error.exit_code)


@click.group("image")
def image() -> None:
    """Images in the depot's registry: one project per namespace (the Harbor piece)."""


@image.command("push")
@click.argument("source")
@click.option(
    "--namespace",
    "-n",
    default="library",
    show_default=True,
    help="The namespace whose project receives the image (library: public short names, admins only).",
)
@click.option("--tag", "-t", default="", help="Tag in the depot (default: the source's tag, else latest).")
@click.option("--repository", default="", help="Name in the project (default: the source's name).")
@click.option(
    "--user", "-u", default=None, help="Push as this user (after `nestlab login USER`); default: lab admin."
)
@click.option(
    "--name", "--lab", "lab", envvar="NESTLAB_LAB", default="default", show_default=True, help="The lab."
)
def push(source: str, *, namespace: str, tag: str, repository: str, user: str | None, lab: str) -> None:
    """Push SOURCE into the depot: an OCI layout directory, an OCI or docker-archive tarball
    (`docker save`), or localhost:PORT/REPO:TAG from a local registry. Digests are checked before
    anything is sent; progress goes to standard error, the pushed reference to standard output."""
    try:
        files = LabFiles.named(lab)
        registry = imagepush.lab_registry(files, DEPOT_REGISTRY_PORT)
        auth = imagepush.lab_auth(files, lab, user)
        with progress.for_console(Console(stderr=True)) as shown:  # a bar on a terminal, lines otherwise
            shown(f"reading {source}")
            with imagepush.open_source(source, tag) as found:
                name = repository or found.name
                if not name:
                    raise UsageError(f"{source} does not say its name: give --repository NAME")
                target = f"{namespace}/{name}:{tag or found.tag or 'latest'}"
                ref = parse_ref(target, registry)  # the name and tag are valid references
                digest = imagepush.push(
                    found, RegistryClient(registry, auth=auth), ref.repository, ref.reference, shown
                )
    except (NestlabError, RegistryError) as exc:
        _fail(exc)
    click.echo(f"{registry}/{target}@{digest}")
    click.echo(f"pods in namespace {namespace} run it as image: {target}", err=True)
