"""The pod description pod-init reads from the disk with serial ``nestlab-pod``.

A line format rather than JSON so that pod-init's parser stays a few dozen lines of C: one
``directive value`` per line, values percent-encoded (spaces, newlines, ``%`` and non-ASCII bytes
become ``%XX``) so that any argument or environment value survives. The disk is the text padded
with NUL bytes to a whole number of sectors. Pure apart from :func:`write_disk`.

Pod-level ``hostname``, ``resolv`` and ``hosts`` carry the pod's names as the kubelet forms them
(:mod:`nestlab.agent.poddns`): pod-init sets the hostname and writes each file whole (one
percent-encoded value) into every container's ``/etc`` before the container starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NewType

from nestlab.errors import UsageError

ContainerName = NewType("ContainerName", str)
DiskSerial = NewType("DiskSerial", str)
RestartPolicy = Literal["Always", "OnFailure", "Never"]

DESCRIPTION_SERIAL = DiskSerial("nestlab-pod")  # pod-init looks for exactly this serial
EPHEMERAL_SERIAL = DiskSerial("nestlab-eph")
MAX_CONTAINERS = 16  # pod-init's fixed table size
MAX_ARGS = 64  # pod-init's per-container argv and env table sizes
MAX_BYTES = 65536  # pod-init reads at most this much of the description disk
SERIAL_MAX = 20  # virtio-blk serials are at most 20 bytes (VIRTIO_BLK_ID_BYTES)
_SECTOR = 512
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,20}$")
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
HOSTNAME_MAX = 64  # the kernel's limit (__NEW_UTS_LEN); setHostnameAsFQDN may reach it
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=+@")


class PodDescriptionError(UsageError):
    """A pod description pod-init could not run; the message names the field."""


@dataclass(frozen=True)
class Container:
    """One container of a pod, as pod-init runs it."""

    name: ContainerName
    """DNS label; prefixes its console output and names it in events."""
    image: DiskSerial
    """Serial of the read-only virtio disk (erofs or ext4) holding its root filesystem."""
    args: tuple[str, ...]
    """Command and arguments; the first is looked up in PATH inside the image."""
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = "/"
    user: tuple[int, int] = (0, 0)
    """(uid, gid) the process runs as."""


@dataclass(frozen=True)
class PodDescription:
    """What pod-init runs."""

    name: str
    containers: tuple[Container, ...]
    restart_policy: RestartPolicy = "Never"
    grace_s: int = 10
    """Seconds between SIGTERM and SIGKILL when the host asks the pod to stop."""
    backoff_ms: int = 10_000
    """First restart delay, doubled after every restart up to five minutes (the kubelet's)."""
    hostname: str = ""
    """The containers' hostname; empty: the pod name."""
    resolv_conf: str = ""
    """Content of every container's /etc/resolv.conf; empty: the image's file is left alone."""
    hosts: str = ""
    """Content of every container's /etc/hosts; empty: the image's file is left alone."""

    def image_serials(self) -> list[DiskSerial]:
        """Distinct image disk serials, in container order."""
        return list(dict.fromkeys(c.image for c in self.containers))


def quote(value: str) -> str:
    """Percent-encode every byte pod-init's line parser could misread."""
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in value.encode())


def unquote(value: str) -> str:
    """The inverse of :func:`quote` (pod-init's ``decode``), for tests and tools."""
    raw = bytearray()
    i = 0
    while i < len(value):
        if value[i] == "%" and len(value) - i >= 3:
            raw.append(int(value[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += value[i].encode()
            i += 1
    return raw.decode()


def _validate_names(desc: PodDescription) -> None:
    if desc.hostname and (len(desc.hostname) > HOSTNAME_MAX or not _HOSTNAME.match(desc.hostname)):
        raise PodDescriptionError(
            f"pod {desc.name}: hostname {desc.hostname!r} must be DNS labels joined by dots, "
            f"at most {HOSTNAME_MAX} characters"
        )
    for label, text in (("resolv.conf", desc.resolv_conf), ("hosts", desc.hosts)):
        if "\0" in text:
            raise PodDescriptionError(f"pod {desc.name}: its {label} must not contain NUL bytes")


def validate(desc: PodDescription) -> None:
    """Raise :class:`PodDescriptionError` for anything pod-init would refuse or misread."""
    if not _DNS_LABEL.match(desc.name):
        raise PodDescriptionError(f"pod name {desc.name!r} must be a DNS label (a-z, 0-9, '-')")
    if not 1 <= len(desc.containers) <= MAX_CONTAINERS:
        raise PodDescriptionError(f"pod {desc.name}: needs 1 to {MAX_CONTAINERS} containers")
    if desc.grace_s < 0 or desc.backoff_ms < 0:
        raise PodDescriptionError(f"pod {desc.name}: grace and backoff must not be negative")
    _validate_names(desc)
    seen: set[str] = set()
    for index, c in enumerate(desc.containers):
        where = f"pod {desc.name}: containers[{index}]"
        if not _DNS_LABEL.match(c.name) or c.name in seen:
            raise PodDescriptionError(f"{where}.name {c.name!r} must be a unique DNS label")
        seen.add(c.name)
        if not _SERIAL.match(c.image) or c.image in (DESCRIPTION_SERIAL, EPHEMERAL_SERIAL):
            raise PodDescriptionError(
                f"{where}.image {c.image!r} must be a disk serial of 1-20 [A-Za-z0-9._-]"
            )
        if not c.args or len(c.args) > MAX_ARGS or len(c.env) >= MAX_ARGS:
            raise PodDescriptionError(f"{where}: needs 1 to {MAX_ARGS} args and fewer than {MAX_ARGS} env")
        for name, _ in c.env:
            if not _ENV_NAME.match(name):
                raise PodDescriptionError(f"{where}.env: {name!r} is not a variable name")
        if not c.working_dir.startswith("/"):
            raise PodDescriptionError(f"{where}.workingDir {c.working_dir!r} must be absolute")
        if min(c.user) < 0:
            raise PodDescriptionError(f"{where}.user: uid and gid must not be negative")


def encode(desc: PodDescription) -> str:
    """The description as pod-init reads it."""
    validate(desc)
    lines = [
        "nestlab-pod 1",
        f"name {desc.name}",
        f"restart {desc.restart_policy}",
        f"grace {desc.grace_s}",
        f"backoff {desc.backoff_ms}",
    ]
    lines += [f"hostname {desc.hostname}"] if desc.hostname else []
    lines += [f"resolv {quote(desc.resolv_conf)}"] if desc.resolv_conf else []
    lines += [f"hosts {quote(desc.hosts)}"] if desc.hosts else []
    for c in desc.containers:
        lines += [f"container {c.name}", f"image {c.image}", f"workdir {quote(c.working_dir)}"]
        lines.append(f"user {c.user[0]}:{c.user[1]}")
        lines += [f"arg {quote(arg)}" for arg in c.args]
        lines += [f"env {quote(f'{k}={v}')}" for k, v in c.env]
        lines.append("end")
    text = "\n".join(lines) + "\n"
    if len(text.encode()) > MAX_BYTES:
        raise PodDescriptionError(f"pod {desc.name}: description exceeds {MAX_BYTES} bytes")
    return text


def disk_bytes(desc: PodDescription) -> bytes:
    """The description disk's content: the text, NUL-padded to whole sectors."""
    data = encode(desc).encode()
    return data + b"\0" * (-len(data) % _SECTOR)


def write_disk(desc: PodDescription, path: Path) -> Path:
    """Write the description disk image to ``path``."""
    path.write_bytes(disk_bytes(desc))
    return path
