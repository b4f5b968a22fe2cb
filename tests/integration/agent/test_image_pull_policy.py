"""imagePullPolicy against a REAL docker-registry: Always follows a moved tag, IfNotPresent and Never
do not ask the registry, Never without the image is ErrImageNeverPull."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.agent import images
from nestlab.agent.registry import ImageNeverPullError, RegistryClient, RegistryUnavailableError, parse_ref
from nestlab.images import oci
from tests.integration.agent.conftest import Registry

pytestmark = pytest.mark.integration


def test_always_follows_a_moved_tag_if_not_present_keeps_its_digest_never_only_looks(
    registry: Registry, busybox_root: Path, tmp_path: Path
) -> None:
    client = RegistryClient(registry.address)
    old = oci.push(client, "demo/web", ["1"], busybox_root, oci.Recipe(cmd=("echo", "old")))
    store = images.ImageStore(tmp_path / "store")
    ref = parse_ref("demo/web:1", registry.address)

    with pytest.raises(ImageNeverPullError, match=r'^Container image "demo/web:1" is not present with pull'):
        store.pull(ref, policy="Never", shown="demo/web:1")
    assert store.digests() == set()

    first = store.pull(ref, policy="IfNotPresent")
    assert first.digest == old
    built = first.disk.stat().st_mtime_ns
    assert store.pull(ref, policy="Always").disk.stat().st_mtime_ns == built  # same digest: same disk

    new = oci.push(client, "demo/web", ["1"], busybox_root, oci.Recipe(cmd=("echo", "new")))
    assert new != old
    assert store.pull(ref, policy="IfNotPresent").digest == old
    assert store.pull(ref, policy="Never").digest == old
    moved = store.pull(ref, policy="Always")
    assert (moved.digest, moved.config.cmd) == (new, ("echo", "new"))
    assert store.digests() == {old, new}

    registry.process.stop()
    assert store.pull(ref, policy="Never").digest == new
    assert store.pull(ref, policy="IfNotPresent").digest == new
    with pytest.raises(RegistryUnavailableError):
        store.pull(ref, policy="Always")
