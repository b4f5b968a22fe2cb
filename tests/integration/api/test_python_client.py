"""The official Python client lists and watches pods; concurrent creates never overrun a quota."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest
from kubernetes import client, config, watch

from nestlab.api import quantity
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer, write_kubeconfig

pytestmark = pytest.mark.integration
NS = "pyclient"


@pytest.fixture(scope="module")
def core(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[client.CoreV1Api]:
    kubeconfig = write_kubeconfig(tmp_path_factory.mktemp("py") / "kubeconfig", apiserver, token=ADMIN_TOKEN)
    api_client = config.new_client_from_config(str(kubeconfig))
    api = client.CoreV1Api(api_client)
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    try:
        yield api
    finally:
        api.delete_namespace(NS)
        api_client.close()


def make_pod(name: str, cpu: str = "100m") -> client.V1Pod:
    container = client.V1Container(
        name="c", image="busybox:1.36", resources=client.V1ResourceRequirements(requests={"cpu": cpu})
    )
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=client.V1PodSpec(containers=[container]),
    )


def test_list_and_watch_pods(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, make_pod("one"))
    listed = core.list_pod_for_all_namespaces(label_selector="app=py")
    assert [(p.metadata.namespace, p.metadata.name, p.status.phase) for p in listed.items] == [
        (NS, "one", "Pending")
    ]
    start = listed.metadata.resource_version

    events: list[tuple[str, str, str]] = []
    watching = threading.Event()

    def collect() -> None:
        stream = watch.Watch()
        for event in stream.stream(
            core.list_namespaced_pod, NS, resource_version=start, timeout_seconds=30, label_selector="app=py"
        ):
            watching.set()
            obj = event["object"]
            events.append((event["type"], obj.metadata.name, obj.status.phase))
            if event["type"] == "DELETED":
                stream.stop()

    thread = threading.Thread(target=collect)
    thread.start()
    try:
        core.create_namespaced_pod(NS, make_pod("two"))
        core.patch_namespaced_pod_status("two", NS, {"status": {"phase": "Running"}})
        core.delete_namespaced_pod("two", NS)
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert events == [
        ("ADDED", "two", "Pending"),
        ("MODIFIED", "two", "Running"),
        ("DELETED", "two", "Running"),
    ]


def test_concurrent_creates_against_quota(core: client.CoreV1Api) -> None:
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="cap"),
        spec=client.V1ResourceQuotaSpec(hard={"cpu": "1", "pods": "20"}),
    )
    core.create_namespaced_resource_quota(NS, quota)
    existing = sum(1 for _ in core.list_namespaced_pod(NS).items)  # "one" from the test above, if it ran

    def create(index: int) -> Any:
        try:
            return core.create_namespaced_pod(NS, make_pod(f"burst-{index}", cpu="300m"))
        except client.ApiException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(create, range(8)))
    admitted = [r for r in results if isinstance(r, client.V1Pod)]
    refused = [r for r in results if isinstance(r, client.ApiException)]
    room = (1000 - 100 * existing) // 300
    assert len(admitted) == room
    assert {r.status for r in refused} == {403}
    assert all("exceeded quota: cap" in r.body for r in refused)
    used = core.read_namespaced_resource_quota("cap", NS).status.used
    assert quantity.parse(used["cpu"]) == Decimal(300 * room + 100 * existing) / 1000
    assert used["pods"] == str(room + existing)
