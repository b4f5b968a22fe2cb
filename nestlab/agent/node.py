"""The agent's own objects in the API: its Node, its Lease heartbeat, and Events about its pods.

A Spherelet makes its ESXi host a Kubernetes node; here the agent registers a Node with its
capacity and allocatable (what pods may request), its addresses and the port it serves pod logs
on (``status.daemonEndpoints.kubeletEndpoint``, as a kubelet does), marks it Ready, and renews a
Lease in ``kube-node-lease`` every few seconds so the control plane can tell a live node from a dead
one. Object bodies are built by pure functions; :class:`NodeReporter` does the API calls.
"""

from __future__ import annotations

import contextlib
import platform
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nestlab.api import status as api_status
from nestlab.api.client import ApiClient, path_of
from nestlab.api.resources import EVENTS, LEASES, NODES

Obj = dict[str, Any]
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_S = 40  # the kubelet's default; renewed every LEASE_DURATION_S / 4
RUNTIME_VERSION = "nestlab-microvm://qemu"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"


@dataclass(frozen=True)
class NodeInfo:
    """What the agent says about its host."""

    name: str
    address: str
    cpu_m: int
    memory_mib: int
    max_pods: int
    log_port: int
    pod_cidr: str = ""


def microtime() -> str:
    """A Kubernetes MicroTime."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def node_status(
    info: NodeInfo, ready: bool = True, message: str = "nestlab-agent is posting ready status"
) -> Obj:
    """The Node ``status`` (capacity = allocatable: the host's share for pods is configured)."""
    resources = {"cpu": f"{info.cpu_m}m", "memory": f"{info.memory_mib}Mi", "pods": str(info.max_pods)}
    now = stamp()
    return {
        "capacity": resources,
        "allocatable": resources,
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        ],
        "addresses": [
            {"type": "InternalIP", "address": info.address},
            {"type": "Hostname", "address": info.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": info.log_port}},
        "nodeInfo": {
            "kernelVersion": platform.release(),
            "osImage": "Debian GNU/Linux 12 (bookworm)",
            "containerRuntimeVersion": RUNTIME_VERSION,
            "kubeletVersion": "v1.27.0-nestlab",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def node_object(info: NodeInfo) -> Obj:
    labels = {"kubernetes.io/hostname": info.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
    spec: Obj = {"podCIDR": info.pod_cidr, "podCIDRs": [info.pod_cidr]} if info.pod_cidr else {}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": info.name, "labels": labels},
        "spec": spec,
    }


def lease_object(node: str) -> Obj:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": node, "namespace": LEASE_NAMESPACE},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": LEASE_DURATION_S, "renewTime": microtime()},
    }


def event_object(pod: Obj, node: str, kind: str, reason: str, message: str) -> Obj:
    meta = pod.get("metadata") or {}
    name = f"{meta.get('name', 'pod')}.{secrets.token_hex(8)}"
    now = stamp()
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta.get("namespace", "default")},
        "involvedObject": {
            "kind": "Pod",
            "apiVersion": "v1",
            "namespace": meta.get("namespace", "default"),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": {"component": "nestlab-agent", "host": node},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }


class NodeReporter:
    """Registers the Node, renews the Lease, posts Events."""

    def __init__(self, client: ApiClient, info: NodeInfo) -> None:
        self.client = client
        self.info = info

    async def register(self) -> None:
        """Create the Node (or keep the existing one) and post its status."""
        try:
            await self.client.create(NODES, "", node_object(self.info))
        except api_status.ApiError as exc:
            if exc.code != 409:
                raise
        await self.post_status()

    async def post_status(self, ready: bool = True) -> None:
        """Strategic merge: conditions merge by type, so others' conditions (Attested) survive."""
        await self.client.request(
            "PATCH",
            path_of(NODES, "", self.info.name, "status"),
            {"status": node_status(self.info, ready)},
            content_type=STRATEGIC_MERGE,
        )

    async def renew(self) -> None:
        """Renew (or create) the Lease."""
        patch = {"spec": {"holderIdentity": self.info.name, "renewTime": microtime()}}
        try:
            await self.client.patch(LEASES, LEASE_NAMESPACE, self.info.name, patch)
        except api_status.ApiError as exc:
            if exc.code != 404:
                raise
            await self.client.create(LEASES, LEASE_NAMESPACE, lease_object(self.info.name))

    async def event(self, pod: Obj, kind: str, reason: str, message: str) -> None:
        """Post an Event about ``pod`` (best effort: an Event lost is not worth failing a pod over)."""
        obj = event_object(pod, self.info.name, kind, reason, message)
        with contextlib.suppress(api_status.ApiError):
            await self.client.create(EVENTS, obj["metadata"]["namespace"], obj)
