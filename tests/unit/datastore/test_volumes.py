"""The datastore's operations over a fake launcher and a fake mkfs: the rules, not the processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.datastore import store
from nestlab.datastore.errors import DatastoreFullError, VolumeConflictError, VolumeNotFoundError
from nestlab.datastore.exports import Exporter
from nestlab.datastore.volumes import Volumes
from nestlab.runtime.proc import ProcessError
from tests.fakes import FakeRunner, answering
from tests.unit.datastore.fakes import FakeSpawn

MIB = store.MIB
PORTS = range(10809, 10812)


def volumes(tmp_path: Path, spawn: FakeSpawn | None = None, run: FakeRunner | None = None) -> Volumes:
    spawn = spawn or FakeSpawn()
    exporter = Exporter(tmp_path / "exports", "198.18.0.5", spawn=spawn, alive=spawn.alive)
    made = Volumes(tmp_path, exporter, PORTS, host="198.18.0.5", run=run or FakeRunner())
    made.recover()
    return made


def test_create_formats_a_sparse_file_once_per_name(tmp_path: Path) -> None:
    run = FakeRunner()
    store_ = volumes(tmp_path, run=run)
    volume, created = store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    assert created
    raw = store_.file_of(volume.id)
    assert raw.stat().st_size == 20 * MIB
    assert run.calls == [("mkfs.ext4", "-F", "-q", "-m", "0", str(raw) + ".part")]
    again, created = store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    assert (again, created) == (volume, False)
    assert len(run.calls) == 1
    assert store.StateFile(tmp_path / "state.json").load() == {volume.id: volume}


def test_a_failed_mkfs_leaves_nothing(tmp_path: Path) -> None:
    store_ = volumes(tmp_path, run=answering(1, stderr="mkfs.ext4: No space left on device"))
    with pytest.raises(ProcessError, match="No space left"):
        store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    assert list((tmp_path / "volumes").iterdir()) == []
    assert store_.list() == []


def test_a_volume_larger_than_the_disk_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatastoreFullError, match="delete volumes or give the depot a larger disk"):
        volumes(tmp_path).create({"name": "huge", "sizeBytes": 16 * 1024**4})


def test_attach_is_idempotent_and_moving_ends_the_old_export(tmp_path: Path) -> None:
    spawn = FakeSpawn()
    store_ = volumes(tmp_path, spawn)
    volume, _ = store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    url = store_.attach(volume.id, "esx-01")
    assert url.startswith("nbd://198.18.0.5:10809/")
    assert store_.attach(volume.id, "esx-01") == url
    assert len(spawn.daemons) == 1
    moved = store_.attach(volume.id, "esx-02")
    assert moved != url
    assert spawn.daemons[0].stopped
    assert [d.pid for d in spawn.running()] == [store_.get(volume.id).attachment.pid]  # type: ignore[union-attr]
    with pytest.raises(VolumeConflictError, match="attached to node esx-02: detach it first"):
        store_.delete(volume.id)
    store_.detach(volume.id)
    store_.detach(volume.id)  # nothing left to do: fine
    assert spawn.running() == []
    store_.delete(volume.id)
    assert not store_.file_of(volume.id).exists()
    with pytest.raises(VolumeNotFoundError):
        store_.attach(volume.id, "esx-01")


def test_a_port_taken_by_another_program_is_skipped(tmp_path: Path) -> None:
    store_ = volumes(tmp_path, FakeSpawn(busy={10809}))
    volume, _ = store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    assert store_.attach(volume.id, "esx-01").startswith("nbd://198.18.0.5:10810/")


def test_ports_run_out(tmp_path: Path) -> None:
    store_ = volumes(tmp_path)
    made = [store_.create({"name": f"pvc-{i}", "sizeBytes": 20 * MIB})[0] for i in range(4)]
    for volume in made[:3]:
        store_.attach(volume.id, "esx-01")
    with pytest.raises(DatastoreFullError, match="widen --port-range"):
        store_.attach(made[3].id, "esx-01")


def test_a_dead_export_is_started_again_on_the_same_url(tmp_path: Path) -> None:
    spawn = FakeSpawn()
    store_ = volumes(tmp_path, spawn)
    volume, _ = store_.create({"name": "pvc-1", "sizeBytes": 20 * MIB})
    url = store_.attach(volume.id, "esx-01")
    spawn.daemons[0].code = -9  # killed behind our back
    assert store_.attach(volume.id, "esx-01") == url
    assert len(spawn.running()) == 1


def test_recover_adopts_live_exports_and_restarts_dead_ones(tmp_path: Path) -> None:
    spawn = FakeSpawn()
    first = volumes(tmp_path, spawn)
    live, _ = first.create({"name": "live", "sizeBytes": 20 * MIB})
    dead, _ = first.create({"name": "dead", "sizeBytes": 20 * MIB})
    live_url, dead_url = first.attach(live.id, "esx-01"), first.attach(dead.id, "esx-02")
    (tmp_path / "volumes" / "vol-left.raw.part").write_bytes(b"")
    spawn.daemons[1].code = -9
    again = volumes(tmp_path, spawn)  # a new service process over the same state
    assert len(spawn.daemons) == 3  # only the dead one was started again
    assert again.attach(live.id, "esx-01") == live_url
    assert again.attach(dead.id, "esx-02") == dead_url
    assert not (tmp_path / "volumes" / "vol-left.raw.part").exists()
