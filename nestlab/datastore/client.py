"""The one client of the datastore (used by nestlab-controller's provisioner and attacher).

Mutual TLS with the lab CA: the controller presents its own client certificate (the one it uses
with the API server), and checks the depot's certificate against the lab CA. Every failure comes
back as a :class:`~nestlab.datastore.errors.DatastoreError` subclass, the same class the service
raised, with its message; an unreachable datastore is ``DatastoreUnavailableError`` naming the URL,
so a controller retries it like an unreachable API server. Deleting and detaching are idempotent
here: a volume that is already gone is what the caller wanted.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from nestlab.datastore.errors import DatastoreUnavailableError, VolumeNotFoundError, from_status

TIMEOUT_S = 60.0  # attach may stop an old export (5-10 s) and start a new one
CREATE_TIMEOUT_S = 330.0  # the service allows mkfs.ext4 300 s


@dataclass(frozen=True)
class VolumeInfo:
    """A volume as the datastore describes it."""

    id: str
    name: str
    size_bytes: int
    fs_type: str
    attached_to: str | None = None
    """The node it is exported to, if any."""


class VolumeService(Protocol):
    """What the controllers need of the datastore (the :class:`DatastoreClient`, or a unit test's fake)."""

    async def create_volume(self, name: str, size_bytes: int, fs_type: str = "ext4") -> VolumeInfo: ...

    async def delete_volume(self, volume_id: str) -> bool: ...

    async def attach(self, volume_id: str, node: str) -> str: ...

    async def detach(self, volume_id: str) -> None: ...


@dataclass(frozen=True)
class DatastoreConfig:
    """Where the datastore is and how to prove who we are."""

    url: str
    """``https://<depot>:9443``."""
    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None


def _info(raw: dict[str, Any]) -> VolumeInfo:
    attachment = raw.get("attachment") or {}
    return VolumeInfo(
        str(raw["id"]),
        str(raw["name"]),
        int(raw["sizeBytes"]),
        str(raw["fsType"]),
        str(attachment["node"]) if attachment.get("node") else None,
    )


class DatastoreClient:
    """Async client over one aiohttp session; ``close()`` it when done."""

    def __init__(self, config: DatastoreConfig, timeout: float = TIMEOUT_S) -> None:
        self.config = config
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            context: ssl.SSLContext | bool = True
            if self.config.url.startswith("https://"):
                ca = None if self.config.ca is None else str(self.config.ca)
                context = ssl.create_default_context(cafile=ca)
                if self.config.cert is not None:
                    key = None if self.config.key is None else str(self.config.key)
                    context.load_cert_chain(str(self.config.cert), key)
            connector = aiohttp.TCPConnector(ssl=context)
            self._session = aiohttp.ClientSession(base_url=self.config.url, connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> tuple[int, Any]:
        try:
            async with self._http().request(
                method, path, json=body, timeout=aiohttp.ClientTimeout(total=timeout or self._timeout)
            ) as response:
                code, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise DatastoreUnavailableError(
                f"datastore {self.config.url} unreachable ({method} {path}: {exc!r}); check that "
                "nestlab-datastore runs on the depot (systemctl status nestlab-datastore)"
            ) from exc
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode(errors="replace")
        if code >= 400:
            message = payload.get("message") if isinstance(payload, dict) else None
            raise from_status(code, str(message or f"{method} {path} answered {code}: {str(payload)[:200]}"))
        return code, payload

    async def create_volume(self, name: str, size_bytes: int, fs_type: str = "ext4") -> VolumeInfo:
        """Create (or find, same name and shape) a volume."""
        body = {"name": name, "sizeBytes": size_bytes, "fsType": fs_type}
        _code, raw = await self._request("POST", "/volumes", body, timeout=CREATE_TIMEOUT_S)
        return _info(raw)

    async def get_volume(self, volume_id: str) -> VolumeInfo:
        """One volume; VolumeNotFoundError."""
        _code, raw = await self._request("GET", f"/volumes/{volume_id}")
        return _info(raw)

    async def list_volumes(self) -> list[VolumeInfo]:
        """Every volume."""
        _code, raw = await self._request("GET", "/volumes")
        return [_info(item) for item in raw.get("volumes") or []]

    async def delete_volume(self, volume_id: str) -> bool:
        """Delete a detached volume; False when it did not exist (already deleted)."""
        try:
            await self._request("DELETE", f"/volumes/{volume_id}")
        except VolumeNotFoundError:
            return False
        return True

    async def attach(self, volume_id: str, node: str) -> str:
        """Export the volume to ``node``; its ``nbd://`` URL."""
        _code, raw = await self._request("PUT", f"/volumes/{volume_id}/attachment", {"node": node})
        return str(raw["nbd"])

    async def detach(self, volume_id: str) -> None:
        """End the volume's export (done already, or the volume is gone: fine)."""
        try:
            await self._request("DELETE", f"/volumes/{volume_id}/attachment")
        except VolumeNotFoundError:
            return
