"""The datastore's HTTP mapping (status codes, bodies, no export names in listings) over plain HTTP
with a fake launcher; mutual TLS and client names are the integration test's."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from nestlab.datastore import service
from nestlab.datastore.exports import Exporter
from nestlab.datastore.volumes import Volumes
from tests.fakes import FakeRunner
from tests.unit.datastore.fakes import FakeSpawn

MIB = 1024 * 1024


def test_routes_and_status_codes(tmp_path: Path) -> None:
    spawn = FakeSpawn()
    volumes = Volumes(
        tmp_path,
        Exporter(tmp_path / "exports", "198.18.0.5", spawn=spawn, alive=spawn.alive),
        range(10809, 10812),
        host="198.18.0.5",
        run=FakeRunner(),
    )
    volumes.recover()

    async def scenario() -> None:
        async with TestClient(TestServer(service.app(volumes, allowed=("controller",)))) as client:
            # plain HTTP has no client certificate: refused, except the health check
            assert (await client.get("/healthz")).status == 200
            refused = await client.get("/volumes")
            assert refused.status == 403
            assert "(none) may not use the datastore" in (await refused.json())["message"]
        async with TestClient(TestServer(service.app(volumes))) as client:
            made = await client.post("/volumes", json={"name": "pvc-1", "sizeBytes": 20 * MIB})
            assert made.status == 201
            body: dict[str, Any] = await made.json()
            assert body == {
                "id": body["id"],
                "name": "pvc-1",
                "sizeBytes": 20 * MIB,
                "fsType": "ext4",
                "attachment": None,
            }
            again = await client.post("/volumes", json={"name": "pvc-1", "sizeBytes": 20 * MIB})
            assert (again.status, (await again.json())["id"]) == (200, body["id"])
            bad = await client.post("/volumes", data=b"{", headers={"Content-Type": "application/json"})
            assert bad.status == 400
            assert "not JSON" in (await bad.json())["message"]
            attach = await client.put(f"/volumes/{body['id']}/attachment", json={"node": "esx-01"})
            assert attach.status == 200
            url = (await attach.json())["nbd"]
            assert url.startswith("nbd://198.18.0.5:10809/")
            listed = await (await client.get("/volumes")).json()
            shown = listed["volumes"][0]["attachment"]
            assert shown == {"node": "esx-01", "serving": True}
            assert url.rsplit("/", 1)[1] not in str(listed)  # the export name is never listed
            assert (await client.delete(f"/volumes/{body['id']}")).status == 409
            assert (await client.put(f"/volumes/{body['id']}/attachment", json={})).status == 400
            assert (await client.delete(f"/volumes/{body['id']}/attachment")).status == 204
            assert (await client.delete(f"/volumes/{body['id']}")).status == 204
            missing = await client.get(f"/volumes/{body['id']}")
            assert missing.status == 404
            assert "does not exist" in (await missing.json())["message"]

    asyncio.run(scenario())
