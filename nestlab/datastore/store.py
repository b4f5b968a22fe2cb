"""The datastore's bookkeeping: which volumes exist, where each is attached, and the JSON file that
remembers it across restarts.

Everything here but :class:`StateFile` is pure: checks of a create request, size rounding, port
choice and the (de)serialisation of the state, so the rules are unit-tested without a disk. The
state file is replaced atomically (write a temporary file, fsync, rename, fsync the directory): a
crash leaves the old state or the new one, never half of each, and a restarted service finds
every volume and every export it had (:mod:`nestlab.datastore.exports` re-adopts the processes).
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nestlab.datastore.errors import (
    DatastoreFullError,
    DatastoreRequestError,
    DatastoreUnavailableError,
    VolumeConflictError,
)

STATE_VERSION = 1
MIB = 1024 * 1024
MIN_SIZE = 16 * MIB  # mkfs.ext4 needs a few MiB for its journal; 16 MiB keeps room for data
MAX_SIZE = 16 * 1024**4  # ext4 with 4 KiB blocks (no 64bit tweaks) tops out at 16 TiB
FS_TYPES = ("ext4",)  # what the datastore formats at create (mkfs.ext4 is in the node image)
NAME_MAX = 253  # a PV name (DNS subdomain) is the longest name the provisioner sends
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_ID = re.compile(r"^vol-[0-9a-f]{16}$")


@dataclass(frozen=True)
class Attachment:
    """A volume exported to one node by one qemu-storage-daemon."""

    node: str
    """The node the export is meant for (the only holder of its name)."""
    port: int
    """TCP port of the export's NBD server on the datastore's address."""
    export: str
    """The NBD export name: a random token, the only way to open the export."""
    pid: int = 0
    """qemu-storage-daemon's PID (0 while not running)."""


@dataclass(frozen=True)
class Volume:
    """One volume: a sparse raw file, formatted at creation."""

    id: str
    """``vol-`` and 16 hex digits, chosen by the datastore (the PV's volumeHandle)."""
    name: str
    """The caller's name, unique: creating the same name twice answers the first volume."""
    size_bytes: int
    fs_type: str
    attachment: Attachment | None = None


@dataclass(frozen=True)
class CreateRequest:
    """A checked ``POST /volumes`` body."""

    name: str
    size_bytes: int
    """Rounded up to whole MiB."""
    fs_type: str


def new_volume_id() -> str:
    """A fresh, unguessable volume id."""
    return f"vol-{secrets.token_hex(8)}"


def new_export_name() -> str:
    """A fresh NBD export name (128 random bits: the attached node is the only one who knows it)."""
    return secrets.token_urlsafe(16)


def valid_id(volume_id: str) -> bool:
    """Whether ``volume_id`` has the shape of an id this datastore hands out."""
    return bool(_ID.match(volume_id))


def round_size(size_bytes: int) -> int:
    """``size_bytes`` rounded up to whole MiB (what the volume really gets)."""
    return -(-size_bytes // MIB) * MIB


def parse_create(body: Any) -> CreateRequest:
    """Check a ``POST /volumes`` body; DatastoreRequestError naming the field otherwise."""
    if not isinstance(body, Mapping):
        raise DatastoreRequestError('the body must be a JSON object {"name", "sizeBytes", "fsType"}')
    name = body.get("name")
    if not isinstance(name, str) or not name or len(name) > NAME_MAX or not _NAME.match(name):
        raise DatastoreRequestError(
            f"name {name!r}: give 1-{NAME_MAX} letters, digits, '-', '_' or '.', starting and ending "
            "with a letter or digit (the provisioner sends the PV name)"
        )
    size = body.get("sizeBytes")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise DatastoreRequestError(f"sizeBytes {size!r}: give a positive integer number of bytes")
    if size < MIN_SIZE:
        raise DatastoreRequestError(f"sizeBytes {size}: the smallest volume is {MIN_SIZE // MIB}Mi")
    if size > MAX_SIZE:
        raise DatastoreRequestError(f"sizeBytes {size}: the largest volume is {MAX_SIZE // 1024**4}Ti")
    fs_type = body.get("fsType") or "ext4"
    if fs_type not in FS_TYPES:
        raise DatastoreRequestError(
            f"fsType {fs_type!r} is not supported: the datastore formats {', '.join(FS_TYPES)}"
        )
    return CreateRequest(name, round_size(size), str(fs_type))


def existing_for(volumes: Iterable[Volume], request: CreateRequest) -> Volume | None:
    """The volume a repeated create answers (same name, same shape); VolumeConflictError when the
    name is taken by a volume of another size or filesystem (CSI's ALREADY_EXISTS)."""
    for volume in volumes:
        if volume.name != request.name:
            continue
        if (volume.size_bytes, volume.fs_type) != (request.size_bytes, request.fs_type):
            raise VolumeConflictError(
                f"volume {request.name} exists as {volume.id} with {volume.size_bytes} bytes "
                f"{volume.fs_type}, not {request.size_bytes} bytes {request.fs_type}: delete it first "
                "or use another name"
            )
        return volume
    return None


def free_port(volumes: Iterable[Volume], ports: range, avoid: Iterable[int] = ()) -> int:
    """The lowest port of ``ports`` no attachment uses and not in ``avoid``; DatastoreFullError."""
    used = {v.attachment.port for v in volumes if v.attachment is not None} | set(avoid)
    for port in ports:
        if port not in used:
            return port
    raise DatastoreFullError(
        f"every NBD port {ports.start}-{ports.stop - 1} carries an attached volume: detach one, or "
        "widen --port-range"
    )


def attached(volume: Volume, node: str, port: int, export: str, pid: int) -> Volume:
    """``volume`` exported to ``node``."""
    return replace(volume, attachment=Attachment(node, port, export, pid))


def detached(volume: Volume) -> Volume:
    """``volume`` with no export."""
    return replace(volume, attachment=None)


def nbd_url(host: str, attachment: Attachment) -> str:
    """``nbd://host:port/export``: what QEMU's NBD client on the node opens."""
    return f"nbd://{host}:{attachment.port}/{attachment.export}"


def to_json(volume: Volume) -> dict[str, Any]:
    """A volume as it is stored (and, without the export name, as ``GET /volumes`` shows it)."""
    out: dict[str, Any] = {
        "id": volume.id,
        "name": volume.name,
        "sizeBytes": volume.size_bytes,
        "fsType": volume.fs_type,
        "attachment": None,
    }
    if volume.attachment is not None:
        a = volume.attachment
        out["attachment"] = {"node": a.node, "port": a.port, "export": a.export, "pid": a.pid}
    return out


def from_json(raw: Mapping[str, Any]) -> Volume:
    """The inverse of :func:`to_json`; KeyError/TypeError/ValueError on a malformed record."""
    attachment = None
    if raw.get("attachment"):
        a = raw["attachment"]
        attachment = Attachment(str(a["node"]), int(a["port"]), str(a["export"]), int(a.get("pid", 0)))
    return Volume(str(raw["id"]), str(raw["name"]), int(raw["sizeBytes"]), str(raw["fsType"]), attachment)


def encode(volumes: Iterable[Volume]) -> str:
    """The state file's text."""
    items = sorted((to_json(v) for v in volumes), key=lambda v: str(v["id"]))
    return json.dumps({"version": STATE_VERSION, "volumes": items}, indent=2) + "\n"


def decode(text: str, source: str) -> dict[str, Volume]:
    """The volumes of a state file's text; DatastoreUnavailableError naming ``source`` when broken."""
    why = "the volume files next to it are untouched"
    try:
        raw = json.loads(text)
        version = raw.get("version")
        volumes = [from_json(item) for item in raw["volumes"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DatastoreUnavailableError(
            f"state file {source} is unreadable ({exc}): restore it from a backup; {why}"
        ) from exc
    if version != STATE_VERSION:
        raise DatastoreUnavailableError(
            f"state file {source} has version {version!r}, this nestlab-datastore reads {STATE_VERSION}: "
            f"run the matching nestlab version; {why}"
        )
    return {volume.id: volume for volume in volumes}


class StateFile:
    """The JSON file holding every volume, replaced atomically on each change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Volume]:
        """The stored volumes (none when the file does not exist yet)."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        return decode(text, str(self.path))

    def save(self, volumes: Iterable[Volume]) -> None:
        """Write the state: temporary file, fsync, rename over the old one, fsync the directory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(encode(volumes))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
