"""The lab datastore end to end: the REAL service (mutual TLS) exporting volumes through the REAL
qemu-storage-daemon, read and written by QEMU's REAL NBD client (qemu-io, qemu-img) on 127.0.0.1.

What it proves: a created volume is an ext4 file system; an attached volume is served to one
client only while that client holds it; moving the attachment to another node ends the old export
(its URL stops working) and keeps the data; exports survive a restart of the service (adopted, or
started again on the same URL when they died meanwhile); deleting needs a detach first.
"""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from nestlab.datastore.errors import (
    DatastoreForbiddenError,
    DatastoreRequestError,
    VolumeConflictError,
    VolumeNotFoundError,
)
from nestlab.runtime import proc
from tests.integration.datastore.conftest import Datastore, run, wait_until

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
NBD_MAGIC = b"NBDMAGIC"  # the first 8 bytes an NBD server sends a client it serves
SILENCE_S = 3.0  # how long a refused second client must hear nothing (the first got its greeting at once)


def qemu_io(url: str, *commands: str) -> str:
    argv = ["qemu-io", "-f", "raw", url]
    for command in commands:
        argv += ["-c", command]
    return proc.run(argv, timeout=60).stdout


def greeting(url: str, wait: float) -> tuple[socket.socket, bytes]:
    """A raw TCP client of the export's server and what the server sent it within ``wait`` seconds."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 0), timeout=10)
    sock.settimeout(wait)
    try:
        data = sock.recv(len(NBD_MAGIC))
    except TimeoutError:
        data = b""
    return sock, data


def create(datastore: Datastore, name: str, size: int) -> dict[str, object]:
    async def go() -> dict[str, object]:
        client = datastore.client()
        try:
            info = await client.create_volume(name, size)
            return {"id": info.id, "size": info.size_bytes}
        finally:
            await client.close()

    return run(go())


def attach(datastore: Datastore, volume_id: str, node: str) -> str:
    async def go() -> str:
        client = datastore.client()
        try:
            return await client.attach(volume_id, node)
        finally:
            await client.close()

    return run(go())


def call(datastore: Datastore, method: str, *args: object) -> object:
    async def go() -> object:
        client = datastore.client()
        try:
            return await getattr(client, method)(*args)
        finally:
            await client.close()

    return run(go())


def test_volume_life(datastore: Datastore) -> None:
    made = create(datastore, "pvc-life", 64 * MIB + 1)
    assert made["size"] == 65 * MIB  # rounded up to whole MiB
    assert create(datastore, "pvc-life", 64 * MIB + 1) == made  # idempotent by name
    with pytest.raises(VolumeConflictError, match="exists as"):
        create(datastore, "pvc-life", 128 * MIB)
    volume_id = str(made["id"])
    raw = datastore.state / "volumes" / f"{volume_id}.raw"
    assert raw.stat().st_size == 65 * MIB
    assert raw.stat().st_blocks * 512 < 65 * MIB  # sparse

    url = attach(datastore, volume_id, "esx-01")
    assert url.startswith("nbd://127.0.0.1:")
    assert attach(datastore, volume_id, "esx-01") == url  # idempotent for the same node
    info = proc.run(["qemu-img", "info", "--output=json", url], timeout=60).stdout
    assert f'"virtual-size": {65 * MIB}' in info
    # the ext4 superblock magic 0xEF53 (little endian) at byte 1080: mkfs.ext4 ran
    assert "53 ef" in qemu_io(url, "read -v 1080 2")
    # a wrong export name is refused by the server
    wrong = url.rsplit("/", 1)[0] + "/guessed"
    with pytest.raises(proc.ProcessError, match=r"not present|not available"):
        proc.run(["qemu-img", "info", wrong], timeout=60)

    # one client at a time: while the first holds the export, a second gets no greeting at all
    holder, hello = greeting(url, 10.0)
    try:
        assert hello == NBD_MAGIC
        second, nothing = greeting(url, SILENCE_S)
        second.close()
        assert nothing == b"", "a second NBD client was served while the first held the volume"
    finally:
        holder.close()
    # released: a client is served again, and writes
    wait_until(lambda: "wrote 65536/65536" in qemu_io(url, "write -P 0x5a 0 64k"), "export free again")
    assert "5a 5a 5a 5a" in qemu_io(url, "read -v 0 16")

    # re-attach to another node: the old export ends (its URL no longer opens), the data moves along
    old_pid = datastore.export_pids()[volume_id]
    moved = attach(datastore, volume_id, "esx-02")
    assert moved != url
    assert (
        not Path(f"/proc/{old_pid}").exists()
        or b"qemu-storage" not in Path(f"/proc/{old_pid}/cmdline").read_bytes()
    )
    with pytest.raises(proc.ProcessError):
        proc.run(["qemu-img", "info", url], timeout=60)
    assert "5a 5a 5a 5a" in qemu_io(moved, "read -v 0 16")
    listed = call(datastore, "list_volumes")
    assert [(v.id, v.attached_to) for v in listed] == [(volume_id, "esx-02")]  # type: ignore[attr-defined]

    # deleting needs a detach first; a detached volume's URL stops working
    with pytest.raises(VolumeConflictError, match="attached to node esx-02"):
        call(datastore, "delete_volume", volume_id)
    call(datastore, "detach", volume_id)
    with pytest.raises(proc.ProcessError):
        proc.run(["qemu-img", "info", moved], timeout=60)
    assert call(datastore, "delete_volume", volume_id) is True
    assert call(datastore, "delete_volume", volume_id) is False  # already gone: idempotent
    assert not raw.exists()
    with pytest.raises(VolumeNotFoundError):
        call(datastore, "get_volume", volume_id)


def test_exports_survive_a_restart(datastore: Datastore) -> None:
    kept = str(create(datastore, "pvc-kept", 32 * MIB)["id"])
    died = str(create(datastore, "pvc-died", 32 * MIB)["id"])
    kept_url = attach(datastore, kept, "esx-01")
    died_url = attach(datastore, died, "esx-01")
    qemu_io(kept_url, "write -P 0x11 0 4k")
    qemu_io(died_url, "write -P 0x22 0 4k")
    pids = datastore.export_pids()

    datastore.stop()
    assert "11 11 11 11" in qemu_io(kept_url, "read -v 0 16")  # served while the service is down
    proc.run(["kill", "-9", str(pids[died])], timeout=10)  # this export dies meanwhile
    wait_until(lambda: not Path(f"/proc/{pids[died]}").exists(), "the killed export gone")
    datastore.start()

    assert datastore.export_pids()[kept] == pids[kept]  # adopted, not restarted
    assert attach(datastore, kept, "esx-01") == kept_url
    assert attach(datastore, died, "esx-01") == died_url  # started again on the same URL
    assert "22 22 22 22" in qemu_io(died_url, "read -v 0 16")
    call(datastore, "detach", kept)  # an adopted export (not the service's child) stops too
    with pytest.raises(proc.ProcessError):
        proc.run(["qemu-img", "info", kept_url], timeout=60)


def test_refusals(datastore: Datastore) -> None:
    with pytest.raises(DatastoreRequestError, match="sizeBytes 0"):
        create(datastore, "pvc-zero", 0)
    with pytest.raises(DatastoreRequestError, match="fsType"):
        call(datastore, "create_volume", "pvc-xfs", 64 * MIB, "xfs")
    with pytest.raises(VolumeNotFoundError, match="vol-0000000000000000 does not exist"):
        attach(datastore, "vol-0000000000000000", "esx-01")

    async def as_node() -> None:
        client = datastore.client(datastore.pki.node)
        try:
            await client.list_volumes()
        finally:
            await client.close()

    with pytest.raises(DatastoreForbiddenError, match="system:node:esx-01 may not use the datastore"):
        run(as_node())
