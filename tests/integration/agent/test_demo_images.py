"""The demo images pushed to a REAL registry and pulled back into erofs disks by the image service."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.agent import demo_images, images
from nestlab.agent.registry import parse_ref
from nestlab.runtime import proc
from tests.integration.agent.conftest import Registry

pytestmark = pytest.mark.integration


def test_publish_pushes_web_and_jobs_that_pull_into_disks(registry: Registry, tmp_path: Path) -> None:
    pushed = demo_images.publish(registry.address)
    assert sorted(pushed) == [
        f"{registry.address}/nestlab/{n}" for n in ("job:fail", "job:ok", "web:1", "web:2")
    ]
    assert pushed[f"{registry.address}/nestlab/web:2"] != pushed[f"{registry.address}/nestlab/web:1"]
    assert demo_images.publish(registry.address) == pushed, "a rebuild gives the same digests"

    store = images.ImageStore(tmp_path / "store")
    web = store.pull(parse_ref("nestlab/web:1", registry.address))
    assert web.config.cmd == ("httpd", "-f", "-p", "80", "-h", "/www")
    listing = proc.run(["dump.erofs", "--path=/www", "--ls", str(web.disk)], timeout=30).stdout
    assert "index.html" in listing
    ok = store.pull(parse_ref("nestlab/job:ok", registry.address))
    fail = store.pull(parse_ref("nestlab/job:fail", registry.address))
    assert dict(ok.config.env)["EXIT_CODE"] == "0"
    assert dict(fail.config.env)["EXIT_CODE"] == "3"
    assert ok.digest != fail.digest
