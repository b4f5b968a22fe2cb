"""``nestlab up --substrate libvirt``: the Pulumi program run through Pulumi's Automation API.

The user should not need to learn Pulumi to get a libvirt lab, so nestlab drives it: a local file
backend and the stack's settings live under the lab's state directory (nothing in the checkout
changes), the stack is named after the lab, and the program is the very same ``__main__.py`` that
``pulumi up`` runs, executed in-process. The Automation API still needs the pulumi CLI; when it is
missing we say so, and how to proceed, before creating anything.
"""

from __future__ import annotations

import contextlib
import runpy
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nestlab import paths
from nestlab.errors import NestlabError, UsageError
from nestlab.runtime import proc
from nestlab.spec import load_spec
from nestlab.substrate.libvirt.settings import StackSettings, public_key_path, read_settings

if TYPE_CHECKING:
    from pulumi import automation as auto

PROJECT = "nestlab"
PULUMI_INSTALL = (
    "the libvirt substrate runs through Pulumi, and the pulumi CLI is not on PATH.\n"
    "Install it (https://www.pulumi.com/docs/install/, e.g. `curl -fsSL https://get.pulumi.com | sh` "
    "and add ~/.pulumi/bin to PATH); its libvirt and command plugins install on first use.\n"
    "The local substrate needs no Pulumi: run `nestlab up` (or `nestlab up --substrate local`) instead."
)
KEY_STAND_IN = "ssh-ed25519 AAAA-made-by-nestlab-up"  # the real key is generated after checking
ERROR_TAIL = 3000  # characters of Pulumi's error output kept: the failing resource and its cause
KEYGEN_TIMEOUT = 30.0  # ssh-keygen for one ed25519 key takes milliseconds; 30 s means it is stuck


class PulumiNotInstalledError(UsageError):
    """The pulumi CLI is missing; the message says how to install it or use the local substrate."""


@dataclass(frozen=True)
class LabRequest:
    """What ``nestlab up --substrate libvirt`` was asked for."""

    spec: Path
    """The lab spec."""
    image: str
    """Node base image (qcow2 path or URL)."""
    domain_type: str = "kvm"
    """``kvm``, or ``qemu`` where the hypervisor has no (nested) KVM."""


def require_pulumi(which: Callable[[str], str | None] = shutil.which) -> str:
    """The pulumi CLI's path, or :class:`PulumiNotInstalledError`."""
    found = which("pulumi")
    if found is None:
        raise PulumiNotInstalledError(PULUMI_INSTALL)
    return found


def stack_config(request: LabRequest, state_dir: Path) -> dict[str, str]:
    """The stack config ``nestlab up`` sets: absolute paths, the lab's own state dir and key."""
    return {
        "nestlab:spec": str(request.spec.resolve()),
        "nestlab:image": request.image if "://" in request.image else str(Path(request.image).resolve()),
        "nestlab:domainType": request.domain_type,
        "nestlab:stateDir": str(state_dir),
        "nestlab:sshPublicKeyFile": str(public_key_path(state_dir)),
    }


def ensure_lab_key(state_dir: Path, run: proc.Runner = proc.run) -> Path:
    """The lab's SSH key pair under ``state_dir``, made with ssh-keygen when missing."""
    public = public_key_path(state_dir)
    private = paths.LabFiles(state_dir).ssh_key
    if not private.exists():
        private.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nestlab", "-f", str(private)],
            timeout=KEYGEN_TIMEOUT,
        )
    return public


def check(request: LabRequest) -> StackSettings:
    """Validate the request exactly as the program will, without creating anything.

    The lab key may not exist yet (``up`` makes it next), so a stand-in key line takes its place.
    """
    name = load_spec(request.spec.resolve()).name
    config = stack_config(request, paths.lab_dir(name))
    del config["nestlab:sshPublicKeyFile"]
    config["nestlab:sshPublicKey"] = KEY_STAND_IN
    return read_settings(config, base_dir=Path.cwd())


def up(
    request: LabRequest,
    *,
    on_output: Callable[[str], None] = print,
    which: Callable[[str], str | None] = shutil.which,
    run: proc.Runner = proc.run,
    preview: bool = False,
) -> dict[str, object]:
    """Create or update the lab's stack and run ``pulumi up`` (or preview); returns the stack outputs."""
    require_pulumi(which)
    settings = check(request)
    ensure_lab_key(settings.state_dir, run)
    read_settings(stack_config(request, settings.state_dir), base_dir=Path.cwd())  # now with the real key
    with _pulumi_errors("up", settings.state_dir):
        stack = _stack(request, settings.state_dir, settings.plan.lab.name)
        if preview:
            stack.preview(on_output=on_output)
            return {}
        result = stack.up(on_output=on_output)
    return {name: output.value for name, output in result.outputs.items()}


def destroy(
    request: LabRequest,
    *,
    on_output: Callable[[str], None] = print,
    which: Callable[[str], str | None] = shutil.which,
) -> None:
    """``pulumi destroy`` for the lab's stack: every domain, disk and network of the lab goes."""
    require_pulumi(which)
    settings = check(request)
    with _pulumi_errors("destroy", settings.state_dir):
        _stack(request, settings.state_dir, settings.plan.lab.name).destroy(on_output=on_output)


@contextlib.contextmanager
def _pulumi_errors(step: str, state_dir: Path) -> Iterator[None]:
    """Pulumi's CommandError -> a NestlabError naming the step, the error tail and where the stack is."""
    from pulumi import automation as auto  # noqa: PLC0415 - see _stack

    try:
        yield
    except auto.CommandError as exc:
        tail = str(exc).strip()[-ERROR_TAIL:]
        raise NestlabError(
            f"pulumi {step} failed: {tail}\nThe stack and its backend are in {state_dir / 'pulumi'}; "
            "docs/pulumi.md lists the usual causes."
        ) from exc


def _stack(request: LabRequest, state_dir: Path, stack_name: str) -> auto.Stack:
    """The lab's stack in a local file backend under ``state_dir/pulumi`` (imports Pulumi lazily)."""
    from pulumi import automation as auto  # noqa: PLC0415 - grpc and friends load only when used

    work = state_dir / "pulumi"
    (work / "backend").mkdir(parents=True, exist_ok=True, mode=0o700)
    passphrase = work / "passphrase"
    if not passphrase.exists():
        passphrase.write_text(secrets.token_urlsafe(32) + "\n", encoding="ascii")
        passphrase.chmod(0o600)
    program_path = paths.repo_root() / "__main__.py"

    def program() -> None:
        runpy.run_path(str(program_path), run_name="__main__")

    workspace = auto.LocalWorkspaceOptions(
        work_dir=str(work),
        project_settings=auto.ProjectSettings(
            name=PROJECT, runtime="python", backend=auto.ProjectBackend(f"file://{work / 'backend'}")
        ),
        env_vars={"PULUMI_CONFIG_PASSPHRASE_FILE": str(passphrase)},
    )
    stack = auto.create_or_select_stack(
        stack_name=stack_name,
        project_name=PROJECT,
        program=program,
        opts=workspace,
    )
    stack.set_all_config({k: auto.ConfigValue(v) for k, v in stack_config(request, state_dir).items()})
    return stack
