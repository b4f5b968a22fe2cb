"""The pod description pod-init reads from the disk with serial ``nestlab-pod``.

A line format rather than JSON so that pod-init's parser stays a few dozen lines of C: one
``directive value`` per line, values percent-encoded (spaces, newlines, ``%`` and non-ASCII bytes
become ``%XX``) so that any argument or environment value survives. The disk is the text padded
with NUL bytes to a whole number of sectors. Pure apart from :func:`write_disk`.

Pod-level ``hostname``, ``resolv`` and ``hosts`` carry the pod's names as the kubelet forms them
(:mod:`nestlab.agent.poddns`): pod-init sets the hostname and writes each file whole (one
percent-encoded value) into every container's ``/etc`` before the container starts.

Volumes (:mod:`nestlab.agent.podvolumes` forms them): pod-level ``volume NAME dir`` (an emptyDir on
the ephemeral disk), ``volume NAME tmpfs SIZE_MIB`` (``medium: Memory``; 0: the kernel's default
size), ``volume NAME files`` followed by ``file NAME PATH MODE CONTENT`` lines (its first
generation, MODE in octal, CONTENT the file's bytes), ``volume NAME block SERIAL FSTYPE ro|rw`` (a
PersistentVolume: the virtio disk with that serial, mounted with its file system, read-only when
``ro``; :mod:`nestlab.agent.pvattach` forms it), ``volume NAME hostpath TAG`` (a host directory
QEMU exports read-only over virtio-9p with mount tag TAG: only ``/var/log/pods``, the vSphere rule);
container-level ``mount NAME PATH ro|rw SUBPATH``
(``-`` for no subPath). A new generation of a ``files`` volume travels over the control channel
(:func:`nestlab.runtime.control.encode_update`). Where a block volume's disk comes from (its
``nbd://`` URL, which holds the datastore's export token) stays on the host: it is never written
into the description the pod can read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NewType

from nestlab.errors import UsageError

ContainerName = NewType("ContainerName", str)
DiskSerial = NewType("DiskSerial", str)
RestartPolicy = Literal["Always", "OnFailure", "Never"]
VolumeKind = Literal["dir", "tmpfs", "files", "block", "hostpath"]

DESCRIPTION_SERIAL = DiskSerial("nestlab-pod")  # pod-init looks for exactly this serial
EPHEMERAL_SERIAL = DiskSerial("nestlab-eph")
MAX_CONTAINERS = 16  # pod-init's fixed table size
MAX_ARGS = 64  # pod-init's per-container argv table size
MAX_ENV = 1024  # pod-init's per-container env table: service links give 8 variables per Service
MAX_BYTES = 8 * 1024 * 1024  # pod-init's buffer: ConfigMaps and Secrets (1 MiB each) travel in it
MAX_VOLUMES = 64  # pod-init's volume table
MAX_MOUNTS = 256  # pod-init's mount table (all containers together)
MAX_FILES = 4096  # pod-init's table of first-generation files (all volumes together)
SERIAL_MAX = 20  # virtio-blk serials are at most 20 bytes (VIRTIO_BLK_ID_BYTES)
LOG_PODS = "/var/log/pods"  # the one host directory a vSphere Pod may mount (read-only)
HOST_PATHS = (LOG_PODS,)  # what a hostpath volume's source may name
HOST_PATH_REASON = "vSphere Pods may mount only /var/log/pods from the host, read-only"
_SECTOR = 512
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_SERIAL = re.compile(r"^[A-Za-z0-9._-]{1,20}$")
BLOCK_FS_TYPES = ("ext4",)  # what the pod kernel mounts (kernel/fragments/30-filesystems.config)
_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
HOSTNAME_MAX = 64  # the kernel's limit (__NEW_UTS_LEN); setHostnameAsFQDN may reach it
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # upstream IsEnvVarName
_PLAIN = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.,:/=+@")


class PodDescriptionError(UsageError):
    """A pod description pod-init could not run; the message names the field."""


@dataclass(frozen=True)
class VolumeFile:
    """One file of a ``files`` volume generation."""

    path: str
    """Relative to the volume; its first component becomes a top-level link into ``..data``."""
    mode: int
    content: bytes


@dataclass(frozen=True)
class Volume:
    """One pod volume as pod-init makes it."""

    name: str
    kind: VolumeKind
    size_mib: int = 0
    """tmpfs only: its size (0: the kernel's default, half the VM's memory)."""
    files: tuple[VolumeFile, ...] = ()
    """files only: the first generation."""
    serial: DiskSerial = DiskSerial("")
    """block only: the serial of the virtio disk holding the file system."""
    fs_type: str = ""
    """block only: the file system pod-init mounts it with (one of :data:`BLOCK_FS_TYPES`)."""
    read_only: bool = False
    """block only: mount the file system read-only (every container mount is then read-only too)."""
    source: str = field(default="", repr=False)  # the export token must not reach a log line
    """block only, host side: where QEMU reads the disk from (``nbd://host:port/export``); never encoded.
    hostpath: the pod spec's path (one of :data:`HOST_PATHS`); the node maps it to its directory."""


@dataclass(frozen=True)
class Mount:
    """A volume bind-mounted into a container's root before it starts."""

    volume: str
    path: str
    read_only: bool = False
    sub_path: str = ""
    """A path inside the volume to mount instead of its root (fixed at start: it never updates)."""


ProbeKind = Literal["liveness", "readiness", "startup"]
ActionKind = Literal["exec", "http", "tcp"]
MAX_ACTION_ARGS = 16  # pod-init's argv table for a probe's or hook's command
MAX_HEADERS = 8  # pod-init's table of httpGet headers
_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


@dataclass(frozen=True)
class Action:
    """What a probe or a lifecycle hook does (the pod spec's handler, ports already numbers)."""

    kind: ActionKind
    command: tuple[str, ...] = ()
    """exec: run in the container (its namespaces, root, user and environment)."""
    host: str = ""
    """http/tcp: an IPv4 address; empty: the pod's own address (the kubelet's default)."""
    port: int = 0
    path: str = "/"
    headers: tuple[tuple[str, str], ...] = ()
    """http: extra request headers (``httpHeaders``)."""


@dataclass(frozen=True)
class Probe:
    """A liveness, readiness or startup probe with the kubelet's timing fields."""

    kind: ProbeKind
    action: Action
    initial_delay_s: int = 0
    period_s: int = 10
    timeout_s: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3


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
    mounts: tuple[Mount, ...] = ()
    init: bool = False
    """An init container: run in order, each to success, before the others start."""
    probes: tuple[Probe, ...] = ()
    post_start: Action | None = None
    pre_stop: Action | None = None
    """Run before SIGTERM whenever pod-init stops the container (within the grace period)."""
    stdin: bool = False
    """A stdin pipe that ``kubectl attach -i`` writes to (kept open across attaches)."""
    stdin_once: bool = False
    """The first attached client's end of input closes stdin until the container restarts."""
    tty: bool = False
    """The container's stdio is a pty of the VM (``kubectl attach -t``, resizes)."""


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
    volumes: tuple[Volume, ...] = ()
    deadline_s: int = 0
    """activeDeadlineSeconds left when the VM starts; 0: none. Past it the pod fails (DeadlineExceeded)."""

    def image_serials(self) -> list[DiskSerial]:
        """Distinct image disk serials, in container order."""
        return list(dict.fromkeys(c.image for c in self.containers))

    def block_sources(self) -> dict[DiskSerial, str]:
        """Each block volume's disk serial and where QEMU reads it from (one disk per serial)."""
        return {v.serial: v.source for v in self.volumes if v.kind == "block"}

    def share_sources(self) -> dict[str, str]:
        """Each hostpath volume's 9p mount tag and its host path (one export per volume: the guest's
        virtio-9p transport takes one mount per tag)."""
        shares = [v for v in self.volumes if v.kind == "hostpath"]
        return {share_tag(index): v.source for index, v in enumerate(shares)}


def share_tag(index: int) -> str:
    """The 9p mount tag of the ``index``-th hostpath volume (QEMU ``mount_tag``, pod-init's source)."""
    return f"nestlab.hp{index}"


def quote(value: str) -> str:
    """Percent-encode every byte pod-init's line parser could misread."""
    return quote_bytes(value.encode())


def quote_bytes(value: bytes) -> str:
    """:func:`quote` for any bytes: a file's content may hold NULs, which pod-init decodes by length."""
    return "".join(chr(b) if b in _PLAIN else f"%{b:02X}" for b in value)


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


def _relative(path: str) -> bool:
    parts = path.split("/")
    return bool(path) and not path.startswith("/") and ".." not in parts and "" not in parts


def _validate_volumes(desc: PodDescription) -> set[str]:
    names: set[str] = set()
    if len(desc.volumes) > MAX_VOLUMES or sum(len(v.files) for v in desc.volumes) > MAX_FILES:
        raise PodDescriptionError(f"pod {desc.name}: at most {MAX_VOLUMES} volumes and {MAX_FILES} files")
    for v in desc.volumes:
        if not _DNS_LABEL.match(v.name) or v.name in names:
            raise PodDescriptionError(f"pod {desc.name}: volume name {v.name!r} must be a unique DNS label")
        names.add(v.name)
        if v.size_mib < 0 or (v.files and v.kind != "files"):
            raise PodDescriptionError(f"pod {desc.name}: volume {v.name}: bad size or files")
        _validate_block(desc, v)
        if v.kind == "hostpath" and v.source not in HOST_PATHS:
            raise PodDescriptionError(
                f"pod {desc.name}: volume {v.name}: hostPath {v.source!r}: {HOST_PATH_REASON}"
            )
        for f in v.files:
            if not _relative(f.path) or f.path.startswith("..") or not 0 <= f.mode <= 0o777:
                raise PodDescriptionError(
                    f"pod {desc.name}: volume {v.name}: file {f.path!r} must be a relative path "
                    "not starting with '..', mode 0-0777"
                )
    return names


def _validate_block(desc: PodDescription, v: Volume) -> None:
    where = f"pod {desc.name}: volume {v.name}"
    if v.kind != "block":
        if v.serial or v.fs_type or (v.source and v.kind != "hostpath"):
            raise PodDescriptionError(f"{where}: only a block volume has a disk serial, fs type or source")
        return
    if not _SERIAL.match(v.serial) or v.serial in (DESCRIPTION_SERIAL, EPHEMERAL_SERIAL):
        raise PodDescriptionError(f"{where}: disk serial {v.serial!r} must be 1-20 [A-Za-z0-9._-]")
    if v.fs_type not in BLOCK_FS_TYPES:
        known = ", ".join(BLOCK_FS_TYPES)
        raise PodDescriptionError(f"{where}: fsType {v.fs_type!r} is not one the pod kernel mounts ({known})")
    if not v.source:
        raise PodDescriptionError(f"{where}: a block volume needs the source QEMU reads its disk from")
    if v.serial in desc.image_serials() or desc.block_sources()[v.serial] != v.source:
        raise PodDescriptionError(f"{where}: disk serial {v.serial} is already another disk's")


def _validate_mounts(desc: PodDescription, names: set[str]) -> None:
    if sum(len(c.mounts) for c in desc.containers) > MAX_MOUNTS:
        raise PodDescriptionError(f"pod {desc.name}: at most {MAX_MOUNTS} volume mounts")
    host_paths = {v.name for v in desc.volumes if v.kind == "hostpath"}
    for c in desc.containers:
        for m in c.mounts:
            where = f"pod {desc.name}: container {c.name}: mount {m.path!r}"
            if m.volume not in names:
                raise PodDescriptionError(f"{where} names no volume ({m.volume!r})")
            if not m.path.startswith("/") or ".." in m.path.split("/"):
                raise PodDescriptionError(f"{where} must be an absolute path without '..'")
            if m.sub_path and not _relative(m.sub_path):
                raise PodDescriptionError(f"{where}: subPath {m.sub_path!r} must be relative, without '..'")
            if m.volume in host_paths and not m.read_only:
                raise PodDescriptionError(
                    f"{where}: a hostPath volume is mounted read-only ({HOST_PATH_REASON})"
                )


def _validate_action(a: Action, where: str) -> None:
    if a.kind == "exec":
        if not 1 <= len(a.command) <= MAX_ACTION_ARGS or not a.command[0]:
            raise PodDescriptionError(f"{where}: exec needs a command of 1 to {MAX_ACTION_ARGS} words")
        return
    if not 1 <= a.port <= 65535:
        raise PodDescriptionError(f"{where}: port {a.port} must be 1-65535")
    if a.host and not _IPV4.match(a.host):
        raise PodDescriptionError(
            f"{where}: host {a.host!r} must be an IPv4 address (pod-init resolves no names)"
        )
    if a.kind == "http" and (not a.path.startswith("/") or len(a.headers) > MAX_HEADERS):
        raise PodDescriptionError(f"{where}: path must start with '/', at most {MAX_HEADERS} headers")
    for name, _ in a.headers:
        if not _HEADER_NAME.match(name):
            raise PodDescriptionError(f"{where}: {name!r} is not an HTTP header name")


def _validate_lifecycle(desc: PodDescription) -> None:
    if desc.deadline_s < 0:
        raise PodDescriptionError(f"pod {desc.name}: the deadline must not be negative")
    for c in desc.containers:
        where = f"pod {desc.name}: container {c.name}"
        kinds = [p.kind for p in c.probes]
        if len(set(kinds)) != len(kinds) or (c.init and (c.probes or c.post_start or c.pre_stop)):
            raise PodDescriptionError(
                f"{where}: one probe of each kind, none (and no hooks) on init containers"
            )
        for p in c.probes:
            timing = (p.period_s, p.timeout_s, p.success_threshold, p.failure_threshold)
            if (
                p.initial_delay_s < 0
                or min(timing) < 1
                or (p.kind != "readiness" and p.success_threshold != 1)
            ):
                raise PodDescriptionError(
                    f"{where}: {p.kind} probe: delay >= 0, period/timeout/thresholds >= 1, "
                    "successThreshold 1 unless readiness"
                )
            _validate_action(p.action, f"{where}: {p.kind} probe")
        for hook, action in (("postStart", c.post_start), ("preStop", c.pre_stop)):
            if action is not None:
                _validate_action(action, f"{where}: {hook}")


def _token(value: str) -> str:
    """One space-free token; an empty value travels as ``%00`` (pod-init's decode ends it there)."""
    return quote(value) or "%00"


def _action_words(a: Action) -> str:
    if a.kind == "exec":
        return " ".join(["exec", *(_token(w) for w in a.command)])
    words = [a.kind, a.host or "-", str(a.port)]
    if a.kind == "http":
        words += [_token(a.path), *(_token(f"{k}: {v}") for k, v in a.headers)]
    return " ".join(words)


def _lifecycle_lines(c: Container) -> list[str]:
    lines = ["init 1"] if c.init else []
    for p in c.probes:
        timing = (p.initial_delay_s, p.period_s, p.timeout_s, p.success_threshold, p.failure_threshold)
        lines.append(f"probe {p.kind} {' '.join(map(str, timing))} {_action_words(p.action)}")
    lines += [f"hook poststart {_action_words(c.post_start)}"] if c.post_start else []
    lines += [f"hook prestop {_action_words(c.pre_stop)}"] if c.pre_stop else []
    return lines


def validate(desc: PodDescription) -> None:
    """Raise :class:`PodDescriptionError` for anything pod-init would refuse or misread."""
    if not _DNS_LABEL.match(desc.name):
        raise PodDescriptionError(f"pod name {desc.name!r} must be a DNS label (a-z, 0-9, '-')")
    if not 1 <= len(desc.containers) <= MAX_CONTAINERS:
        raise PodDescriptionError(f"pod {desc.name}: needs 1 to {MAX_CONTAINERS} containers")
    if desc.grace_s < 0 or desc.backoff_ms < 0:
        raise PodDescriptionError(f"pod {desc.name}: grace and backoff must not be negative")
    _validate_names(desc)
    _validate_mounts(desc, _validate_volumes(desc))
    _validate_lifecycle(desc)
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
        if not c.args or len(c.args) > MAX_ARGS or len(c.env) >= MAX_ENV:
            raise PodDescriptionError(f"{where}: needs 1 to {MAX_ARGS} args and fewer than {MAX_ENV} env")
        for name, _ in c.env:
            if not _ENV_NAME.match(name):
                raise PodDescriptionError(f"{where}.env: {name!r} is not a variable name")
        if not c.working_dir.startswith("/"):
            raise PodDescriptionError(f"{where}.workingDir {c.working_dir!r} must be absolute")
        if min(c.user) < 0:
            raise PodDescriptionError(f"{where}.user: uid and gid must not be negative")


def _volume_words(v: Volume, desc: PodDescription) -> str:
    if v.kind == "tmpfs":
        return f" {v.size_mib}"
    if v.kind == "block":
        return f" {v.serial} {v.fs_type} {'ro' if v.read_only else 'rw'}"
    if v.kind == "hostpath":
        return f" {share_tag([w.name for w in desc.volumes if w.kind == 'hostpath'].index(v.name))}"
    return ""


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
    lines += [f"deadline {desc.deadline_s}"] if desc.deadline_s else []
    for v in desc.volumes:
        lines.append(f"volume {v.name} {v.kind}" + _volume_words(v, desc))
        lines += [f"file {v.name} {quote(f.path)} {f.mode:04o} {quote_bytes(f.content)}" for f in v.files]
    for c in desc.containers:
        lines += [f"container {c.name}", f"image {c.image}", f"workdir {quote(c.working_dir)}"]
        lines.append(f"user {c.user[0]}:{c.user[1]}")
        lines += [f"arg {quote(arg)}" for arg in c.args]
        lines += [f"env {quote(f'{k}={v}')}" for k, v in c.env]
        lines += [
            f"mount {m.volume} {quote(m.path)} {'ro' if m.read_only else 'rw'} {quote(m.sub_path) or '-'}"
            for m in c.mounts
        ]
        if c.stdin or c.tty:
            lines.append(f"stdio {int(c.stdin)} {int(c.stdin_once)} {int(c.tty)}")
        lines += _lifecycle_lines(c)
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
