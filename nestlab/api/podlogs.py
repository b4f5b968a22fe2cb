"""``pods/log``: the API server proxies a container's log from the agent on the pod's node.

As in Kubernetes, the API server does not hold logs; it finds the pod's node, picks the container
(the only one, or the one named by ``?container=``), and asks that node's agent over HTTPS with
its own lab-CA certificate. Errors keep the upstream message shapes kubectl users know.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from pathlib import Path

from nestlab.agent import logs
from nestlab.api import status
from nestlab.api.registry import Registry
from nestlab.api.resources import NODES, PODS


def agent_client_tls(cert: Path | None, key: Path | None, ca: Path | None) -> ssl.SSLContext | None:
    """The TLS context the API server uses towards agents; None when it has no certificate."""
    if cert is None or ca is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
    context.load_cert_chain(str(cert), None if key is None else str(key))
    return context


def _tail(query: Mapping[str, str]) -> int | None:
    raw = query.get("tailLines")
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise status.bad_request(f"tailLines: invalid value {raw!r}: must be a whole number") from None
    if value < 0:
        raise status.bad_request(f"tailLines: invalid value {value}: must be greater than or equal to 0")
    return value


async def pod_log(
    registry: Registry, namespace: str, name: str, query: Mapping[str, str], tls: ssl.SSLContext | None
) -> str:
    """The log text of one container of pod ``namespace/name``."""
    tail = _tail(query)
    pod = await registry.get(PODS, namespace, name)
    containers = [c.get("name", "") for c in pod.get("spec", {}).get("containers", [])]
    container = query.get("container") or (containers[0] if len(containers) == 1 else "")
    if not container:
        raise status.bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
        )
    if container not in containers:
        raise status.bad_request(f"container {container} is not valid for pod {name}")
    node_name = pod.get("spec", {}).get("nodeName")
    if not node_name:
        raise status.bad_request(f"pod {name} does not have a host assigned")
    if tls is None:
        raise status.unavailable("this API server has no client certificate to reach node agents")
    node = await registry.get(NODES, "", node_name)
    try:
        return await logs.fetch(node, namespace, name, container, context=tls, tail=tail)
    except logs.LogFetchError as exc:
        raise status.unavailable(f"cannot get the log of {namespace}/{name}/{container}: {exc}") from exc
