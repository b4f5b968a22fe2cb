"""What ``nestlab login`` leaves on the outer machine: a per-user kubeconfig and a token cache.

vSphere's ``kubectl vsphere login`` writes a kubeconfig context whose token came from the Token
Exchange Service; nestlab does the same through a kubectl exec credential plugin instead of
writing the token into the kubeconfig: the kubeconfig (``<lab dir>/users/<user>.kubeconfig``)
holds only the cluster's address and CA and the command ``nestlab credential --lab L --user U``,
which prints the cached token (``<lab dir>/users/<user>.token``, mode 0600) as an
``ExecCredential``, or fails with the command to run when it has expired. Copying the kubeconfig
gives nobody a credential.

Pure functions build the documents; the few file operations are at the bottom.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from nestlab import paths
from nestlab.errors import NestlabError, UsageError
from nestlab.paths import LabFiles

EXEC_API = "client.authentication.k8s.io/v1beta1"
"""The exec credential API both kubectl generations speak (1.20 and 1.33)."""
EXEC_APIS = (EXEC_API, "client.authentication.k8s.io/v1")
CACHE_KIND = "LoginToken"
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


class LoginExpiredError(NestlabError):
    """The cached token is missing or expired: the message says which ``nestlab login`` to run."""


@dataclass(frozen=True)
class Login:
    """A token the Token Exchange Service issued."""

    user: str
    token: str
    expiration: str
    """RFC 3339 UTC (``2026-12-06T09:00:00Z``), as the API answered it."""


def parse_duration(text: str) -> int:
    """Seconds of ``10h``, ``90m``, ``1h30m``, ``600s`` or ``600``; UsageError otherwise."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise UsageError(f"{text!r} is not a duration: write it like 10h, 90m, 1h30m or 600s")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 UTC timestamp."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)


def login_hint(user: str, lab: str) -> str:
    """The command that logs ``user`` in to ``lab`` again, as it can be typed here."""
    return f"{program_name()} login {user}" + ("" if lab == "default" else f" --lab {lab}")


def program_name() -> str:
    """How to type this ``nestlab`` here: ``nestlab`` when PATH finds this one, else its path,
    relative to the current directory when it lies below it (``.venv/bin/nestlab`` in a clone)."""
    try:
        command = Path(nestlab_command()[0])
    except UsageError:
        return "nestlab"
    found = shutil.which("nestlab")
    if found is not None and Path(found).absolute() == command:
        return "nestlab"
    try:
        return str(command.relative_to(Path.cwd()))
    except ValueError:
        return str(command)


def user_kubeconfig(
    lab: str, user: str, cluster: Mapping[str, Any], command: Sequence[str], home: Path
) -> dict[str, Any]:
    """The per-user kubeconfig: the lab's cluster entry (address and CA only) and an exec plugin."""
    name = f"{user}@{lab}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": lab, "cluster": dict(cluster)}],
        "users": [
            {
                "name": name,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API,
                        "command": command[0],
                        "args": [*command[1:], "credential", "--lab", lab, "--user", user],
                        # The plugin finds the token cache wherever kubectl runs from (sudo, cron).
                        "env": [{"name": "NESTLAB_HOME", "value": str(home)}],
                    }
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": lab, "user": name, "namespace": "default"}}],
        "current-context": name,
        "preferences": {},
    }


def token_cache(lab: str, login: Login) -> dict[str, str]:
    """The token cache document."""
    return {
        "apiVersion": "nestlab.dev/v1",
        "kind": CACHE_KIND,
        "lab": lab,
        "user": login.user,
        "token": login.token,
        "expirationTimestamp": login.expiration,
    }


def exec_credential(
    cache: Mapping[str, Any] | None,
    user: str,
    lab: str,
    now: datetime.datetime,
    api_version: str = EXEC_API,
) -> dict[str, Any]:
    """The ExecCredential kubectl reads from the plugin; LoginExpiredError when there is no valid token."""
    if cache is None:
        raise LoginExpiredError(f"{user} has not logged in to lab {lab}: run {login_hint(user, lab)}")
    try:
        token, expiration = str(cache["token"]), str(cache["expirationTimestamp"])
        expires = parse_time(expiration)
    except (KeyError, ValueError) as exc:
        raise LoginExpiredError(
            f"the token cache of {user} is damaged ({exc}): run {login_hint(user, lab)}"
        ) from exc
    if now >= expires:
        raise LoginExpiredError(f"the token of {user} expired at {expiration}: run {login_hint(user, lab)}")
    return {
        "apiVersion": api_version if api_version in EXEC_APIS else EXEC_API,
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expiration},
    }


def requested_api_version(exec_info: str | None) -> str:
    """The ExecCredential apiVersion kubectl asked for in ``KUBERNETES_EXEC_INFO`` (v1beta1 if none)."""
    try:
        version = json.loads(exec_info or "{}").get("apiVersion", EXEC_API)
    except (ValueError, AttributeError):
        return EXEC_API
    return version if version in EXEC_APIS else EXEC_API


def nestlab_command() -> list[str]:
    """The absolute command of the running ``nestlab`` (the exec plugin must not depend on PATH)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "nestlab" and argv0.exists():
        return [str(argv0.absolute())]
    beside = Path(sys.executable).parent / "nestlab"  # the venv's console script
    if beside.exists():
        return [str(beside)]
    found = shutil.which("nestlab")
    if found is None:
        raise UsageError("cannot find the nestlab command to put in the kubeconfig: put it on PATH")
    return [str(Path(found).absolute())]


# -- files ------------------------------------------------------------------------------------------
def users_dir(files: LabFiles) -> Path:
    """Where the lab's per-user kubeconfigs and token caches live."""
    return files.root / "users"


def _file_name(user: str) -> str:
    if not user or "/" in user or user.startswith(".") or "\0" in user:
        raise UsageError(f"{user!r} is not a lab user name")
    return user


def kubeconfig_path(files: LabFiles, user: str) -> Path:
    """The per-user kubeconfig ``nestlab login`` writes."""
    return users_dir(files) / f"{_file_name(user)}.kubeconfig"


def token_path(files: LabFiles, user: str) -> Path:
    """The 0600 token cache next to it."""
    return users_dir(files) / f"{_file_name(user)}.token"


def _write(path: Path, text: str, mode: int) -> None:
    """Replace ``path`` atomically with ``text``, created with ``mode`` (never readable by others
    in between: the temporary file is made with the final mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def save_login(
    files: LabFiles, lab: str, login: Login, cluster: Mapping[str, Any], command: Sequence[str] | None = None
) -> Path:
    """Write the token cache (0600) and the per-user kubeconfig; the kubeconfig's path."""
    _write(token_path(files, login.user), json.dumps(token_cache(lab, login), indent=2) + "\n", 0o600)
    config = user_kubeconfig(lab, login.user, cluster, command or nestlab_command(), paths.home())
    path = kubeconfig_path(files, login.user)
    _write(path, yaml.safe_dump(config, sort_keys=False), 0o600)
    return path


def read_cache(files: LabFiles, user: str) -> dict[str, Any] | None:
    """The token cache of ``user``, or None when there is none (a damaged one reads as empty: the
    credential then says to log in again); LoginExpiredError when it exists but cannot be read."""
    path = token_path(files, user)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LoginExpiredError(
            f"cannot read the token cache {path}: {exc.strerror} (it belongs to whoever ran nestlab login)"
        ) from exc
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def cached_token(files: LabFiles, lab: str, user: str, now: datetime.datetime) -> str:
    """``user``'s login token if it is still valid (for callers other than kubectl, such as image
    pushes); LoginExpiredError saying which ``nestlab login`` to run otherwise."""
    return str(exec_credential(read_cache(files, user), user, lab, now)["status"]["token"])


def forget(files: LabFiles, user: str) -> None:
    """Remove ``user``'s token cache and kubeconfig (after the user is removed from the lab)."""
    token_path(files, user).unlink(missing_ok=True)
    kubeconfig_path(files, user).unlink(missing_ok=True)
