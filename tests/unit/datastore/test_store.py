"""The datastore's bookkeeping: create requests, sizes, ports, the state file (pure, and on tmp_path)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nestlab.datastore import store
from nestlab.datastore.errors import (
    DatastoreFullError,
    DatastoreRequestError,
    DatastoreUnavailableError,
    VolumeConflictError,
)

MIB = store.MIB


def test_create_request_is_checked_and_rounded() -> None:
    request = store.parse_create({"name": "pvc-1", "sizeBytes": 20 * MIB + 1, "fsType": "ext4"})
    assert request == store.CreateRequest("pvc-1", 21 * MIB, "ext4")
    assert store.parse_create({"name": "pvc-1", "sizeBytes": 20 * MIB}).fs_type == "ext4"  # default


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "JSON object"),
        ({"sizeBytes": 20 * MIB}, "name None"),
        ({"name": "-bad", "sizeBytes": 20 * MIB}, "name '-bad'"),
        ({"name": "a" * 254, "sizeBytes": 20 * MIB}, "1-253"),
        ({"name": "v", "sizeBytes": "1Gi"}, "sizeBytes '1Gi'"),
        ({"name": "v", "sizeBytes": True}, "sizeBytes True"),
        ({"name": "v", "sizeBytes": 0}, "sizeBytes 0"),
        ({"name": "v", "sizeBytes": MIB}, "smallest volume is 16Mi"),
        ({"name": "v", "sizeBytes": 17 * 1024**4}, "largest volume is 16Ti"),
        ({"name": "v", "sizeBytes": 20 * MIB, "fsType": "xfs"}, "fsType 'xfs' is not supported"),
    ],
)
def test_bad_create_requests_name_the_field(body: object, field: str) -> None:
    with pytest.raises(DatastoreRequestError, match=field):
        store.parse_create(body)


def test_a_repeated_create_answers_the_volume_or_a_conflict() -> None:
    volume = store.Volume("vol-0000000000000001", "pvc-1", 20 * MIB, "ext4")
    same = store.CreateRequest("pvc-1", 20 * MIB, "ext4")
    assert store.existing_for([volume], same) is volume
    assert store.existing_for([volume], store.CreateRequest("pvc-2", 20 * MIB, "ext4")) is None
    with pytest.raises(VolumeConflictError, match="exists as vol-0000000000000001"):
        store.existing_for([volume], store.CreateRequest("pvc-1", 40 * MIB, "ext4"))


def test_lowest_free_port_skips_attached_and_tried() -> None:
    a = store.attached(store.Volume("vol-a", "a", MIB, "ext4"), "esx-01", 10809, "t", 1)
    b = store.Volume("vol-b", "b", MIB, "ext4")
    assert store.free_port([a, b], range(10809, 10812)) == 10810
    assert store.free_port([a, b], range(10809, 10812), avoid=[10810]) == 10811
    with pytest.raises(DatastoreFullError, match="every NBD port 10809-10809"):
        store.free_port([a], range(10809, 10810))


def test_nbd_url_and_ids() -> None:
    assert (
        store.nbd_url("198.18.0.5", store.Attachment("esx-01", 10809, "tok")) == "nbd://198.18.0.5:10809/tok"
    )
    assert store.valid_id(store.new_volume_id())
    assert store.new_export_name() != store.new_export_name()
    assert (
        store.detached(store.attached(store.Volume("i", "n", 1, "ext4"), "x", 1, "t", 2)).attachment is None
    )


def test_state_round_trip_and_atomic_save(tmp_path: Path) -> None:
    state = store.StateFile(tmp_path / "state.json")
    assert state.load() == {}
    volumes = [
        store.Volume("vol-b", "b", 20 * MIB, "ext4"),
        store.attached(store.Volume("vol-a", "a", 20 * MIB, "ext4"), "esx-01", 10809, "tok", 42),
    ]
    state.save(volumes)
    assert state.load() == {v.id: v for v in volumes}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600  # export names are secrets
    raw = json.loads((tmp_path / "state.json").read_text())
    assert [v["id"] for v in raw["volumes"]] == ["vol-a", "vol-b"]


@pytest.mark.parametrize(
    ("text", "why"),
    [("{", "unreadable"), ('{"version": 9, "volumes": []}', "version 9"), ('{"version": 1}', "unreadable")],
)
def test_a_broken_state_file_is_named(tmp_path: Path, text: str, why: str) -> None:
    (tmp_path / "state.json").write_text(text)
    with pytest.raises(DatastoreUnavailableError, match=why) as caught:
        store.StateFile(tmp_path / "state.json").load()
    assert str(tmp_path / "state.json") in str(caught.value)
