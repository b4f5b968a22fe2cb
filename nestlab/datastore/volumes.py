"""The datastore's operations: create, delete, attach, detach and recover volumes, one at a time.

This is where bookkeeping (:mod:`nestlab.datastore.store`) meets the disk and the exports
(:mod:`nestlab.datastore.exports`). Every operation holds one lock, so two requests never race on a
volume or a port, and saves the state before answering, so what the controller was told survives
a crash. A volume is made as ``<id>.raw.part`` (sparse file, ``mkfs.ext4``) and renamed into place
only once formatted: a crash mid-create leaves a ``.part`` file that the next start removes, never
a half-made volume in the state. The calls block (mkfs, process start): the HTTP service runs them
in a thread.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from nestlab.datastore import store
from nestlab.datastore.errors import (
    DatastoreFullError,
    DatastoreRequestError,
    VolumeConflictError,
    VolumeNotFoundError,
)
from nestlab.datastore.exports import Exporter, PortInUseError
from nestlab.runtime import proc

log = logging.getLogger(__name__)
MKFS_TIMEOUT_S = 300  # mkfs.ext4 of a large sparse file on a loaded lab disk: minutes at worst
NODE_MAX = 253  # a Node name is a DNS subdomain


class Volumes:
    """The volumes under ``root`` (``state.json``, ``volumes/``, ``exports/``), exported on ``host``."""

    def __init__(
        self, root: Path, exporter: Exporter, ports: range, *, host: str, run: proc.Runner = proc.run
    ) -> None:
        self.root = root
        self.exporter = exporter
        self.ports = ports
        self.host = host
        self._run = run
        self._state = store.StateFile(root / "state.json")
        self._lock = threading.Lock()
        self._volumes: dict[str, store.Volume] = {}

    def file_of(self, volume_id: str) -> Path:
        """The raw file of a volume."""
        return self.root / "volumes" / f"{volume_id}.raw"

    # -- start ------------------------------------------------------------------------------
    def recover(self) -> None:
        """Load the state; adopt each attached volume's daemon, or start it again on its port and name
        (the node's NBD URL stays valid); remove leftovers of interrupted creates."""
        with self._lock:
            (self.root / "volumes").mkdir(parents=True, exist_ok=True)
            self._volumes = self._state.load()
            for part in (self.root / "volumes").glob("*.raw.part"):
                log.info("removing %s, left by a create that did not finish", part.name)
                part.unlink(missing_ok=True)
            known = {self.file_of(v).name for v in self._volumes}
            for orphan in sorted(
                p.name for p in (self.root / "volumes").glob("*.raw") if p.name not in known
            ):
                log.warning("volumes/%s is in no volume record: kept, remove it by hand if unwanted", orphan)
            for volume in list(self._volumes.values()):
                attachment = volume.attachment
                if attachment is None:
                    continue
                if self.exporter.running(attachment.pid, self.file_of(volume.id)):
                    log.info(
                        "adopted the export of %s to %s (pid %d)", volume.id, attachment.node, attachment.pid
                    )
                    continue
                try:
                    self._export(volume, attachment.node, attachment.export, attachment.port)
                except Exception as exc:  # one broken export must not keep the datastore down
                    log.error("cannot export %s to %s again: %s", volume.id, attachment.node, exc)  # noqa: TRY400
            self._save()

    # -- reading ----------------------------------------------------------------------------
    def list(self) -> list[store.Volume]:
        """Every volume, by id."""
        with self._lock:
            return sorted(self._volumes.values(), key=lambda v: v.id)

    def get(self, volume_id: str) -> store.Volume:
        """One volume; VolumeNotFoundError."""
        with self._lock:
            return self._find(volume_id)

    def serving(self, volume: store.Volume) -> bool:
        """Whether ``volume``'s export (if any) is running now."""
        a = volume.attachment
        return a is not None and self.exporter.running(a.pid, self.file_of(volume.id))

    # -- changes ----------------------------------------------------------------------------
    def create(self, body: object) -> tuple[store.Volume, bool]:
        """Create a volume from a ``POST /volumes`` body; (volume, created) where created is False when
        the same name and shape existed already (idempotent, as CSI CreateVolume)."""
        request = store.parse_create(body)
        with self._lock:
            existing = store.existing_for(self._volumes.values(), request)
            if existing is not None:
                return existing, False
            volume_id = store.new_volume_id()
            final = self.file_of(volume_id)
            final.parent.mkdir(parents=True, exist_ok=True)
            free = _free_bytes(final.parent)
            if request.size_bytes > free:
                raise DatastoreFullError(
                    f"volume {request.name} needs {request.size_bytes} bytes but the datastore's disk has "
                    f"{free} free: delete volumes or give the depot a larger disk"
                )
            part = final.with_name(final.name + ".part")
            try:
                with part.open("wb") as out:
                    out.truncate(request.size_bytes)  # sparse: blocks are taken as the pod writes
                self._run(["mkfs.ext4", "-F", "-q", "-m", "0", str(part)], timeout=MKFS_TIMEOUT_S)
                part.rename(final)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            volume = store.Volume(volume_id, request.name, request.size_bytes, request.fs_type)
            self._volumes[volume_id] = volume
            self._save()
            log.info(
                "created %s (%s, %d bytes %s)", volume_id, request.name, request.size_bytes, request.fs_type
            )
            return volume, True

    def delete(self, volume_id: str) -> None:
        """Delete a detached volume and its data; VolumeConflictError while it is attached."""
        with self._lock:
            volume = self._find(volume_id)
            if volume.attachment is not None:
                raise VolumeConflictError(
                    f"volume {volume_id} is attached to node {volume.attachment.node}: detach it first "
                    f"(DELETE /volumes/{volume_id}/attachment)"
                )
            self.file_of(volume_id).unlink(missing_ok=True)
            del self._volumes[volume_id]
            self._save()
            log.info("deleted %s (%s)", volume_id, volume.name)

    def attach(self, volume_id: str, node: str) -> str:
        """Export the volume to ``node``; its NBD URL. Attached to another node: that export is ended
        first (the controller asks only once no pod there uses it). Idempotent for the same node."""
        if not node or len(node) > NODE_MAX or any(c.isspace() or c == "/" for c in node):
            raise DatastoreRequestError(f"node {node!r}: give the name of the Node to attach to")
        with self._lock:
            volume = self._find(volume_id)
            current = volume.attachment
            if current is not None and current.node == node:
                if self.exporter.running(current.pid, self.file_of(volume_id)):
                    return store.nbd_url(self.host, current)
                log.warning("the export of %s to %s was not running: starting it again", volume_id, node)
                volume = self._export(volume, node, current.export, current.port)
            else:
                if current is not None:
                    log.info("moving %s from %s to %s", volume_id, current.node, node)
                    volume = self._unexport(volume)
                volume = self._export(volume, node, store.new_export_name(), None)
            self._save()
            assert volume.attachment is not None  # noqa: S101 - _export always attaches
            return store.nbd_url(self.host, volume.attachment)

    def detach(self, volume_id: str) -> None:
        """End the volume's export (nothing to do when it has none)."""
        with self._lock:
            volume = self._find(volume_id)
            if volume.attachment is not None:
                self._unexport(volume)
                self._save()

    # -- inside the lock --------------------------------------------------------------------
    def _find(self, volume_id: str) -> store.Volume:
        volume = self._volumes.get(volume_id)
        if volume is None:
            raise VolumeNotFoundError(f"volume {volume_id} does not exist on this datastore")
        return volume

    def _export(self, volume: store.Volume, node: str, export: str, port: int | None) -> store.Volume:
        """Start ``volume``'s daemon for ``node`` (on ``port``, or the lowest free one; a port another
        program holds is skipped) and record it."""
        others = [v for v in self._volumes.values() if v.id != volume.id]
        tried: list[int] = []
        while True:
            chosen = port if port is not None and not tried else store.free_port(others, self.ports, tried)
            try:
                pid = self.exporter.start(volume.id, self.file_of(volume.id), chosen, export)
            except PortInUseError:
                tried.append(chosen)
                continue
            volume = store.attached(volume, node, chosen, export, pid)
            self._volumes[volume.id] = volume
            log.info("exported %s to %s on port %d (pid %d)", volume.id, node, chosen, pid)
            return volume

    def _unexport(self, volume: store.Volume) -> store.Volume:
        attachment = volume.attachment
        if attachment is not None:
            self.exporter.stop(attachment.pid, self.file_of(volume.id))
            log.info("ended the export of %s to %s", volume.id, attachment.node)
        volume = store.detached(volume)
        self._volumes[volume.id] = volume
        return volume

    def _save(self) -> None:
        self._state.save(self._volumes.values())


def _free_bytes(directory: Path) -> int:
    stats = os.statvfs(directory)
    return stats.f_bavail * stats.f_frsize
