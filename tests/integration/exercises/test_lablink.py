"""LabLink (the exercises' real Lab) against the REAL nestlab-apiserver on a real 3-member etcd:
API reads, kubectl with the given kubeconfig, 404 as None, an API that does not answer as one
UsageError line; and exercise 1's check reading what kubectl wrote."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.api.client import Credentials
from nestlab.errors import UsageError
from nestlab.exercises import ex01_tour
from nestlab.exercises.lablink import LabLink
from tests.integration.api.conftest import ApiServer, free_port, write_kubeconfig

pytestmark = pytest.mark.integration


@pytest.fixture
def link(apiserver: ApiServer, tmp_path: Path) -> LabLink:
    pki = apiserver.pki
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", apiserver, cert=pki.alice_cert, key=pki.alice_key)
    credentials = Credentials(apiserver.url, pki.ca, None, pki.alice_cert, pki.alice_key)
    return LabLink("it", credentials=credentials, kubeconfig=kubeconfig)


def test_reads_and_kubectl(link: LabLink) -> None:
    link.require_up()
    link.kubectl("create", "namespace", "ex-link")
    try:
        assert link.get("/api/v1/namespaces/ex-link") is not None
        assert link.get("/api/v1/namespaces/ex-link/configmaps/nothing") is None
        names = {item["metadata"]["name"] for item in link.items("/api/v1/namespaces")}
        assert "ex-link" in names
        assert link.kubectl("get", "namespace", "ex-link", "-o", "name").strip() == "namespace/ex-link"
    finally:
        link.kubectl("delete", "namespace", "ex-link", "--wait=false", check=False)


def test_exercise_1_check_against_the_real_api(link: LabLink, apiserver: ApiServer) -> None:
    link.kubectl("delete", "namespace", "ex01", "--ignore-not-found", "--wait=true", "--timeout=60s")
    assert ex01_tour.check(link) == ["namespace ex01 does not exist (step 7: kubectl create namespace ex01)"]
    nodes = len(link.items("/api/v1/nodes"))
    link.kubectl("create", "namespace", "ex01")
    try:
        link.kubectl(
            "-n", "ex01", "create", "configmap", "tour", f"--from-literal=vip={apiserver.url}",
            f"--from-literal=hosts={nodes}", "--from-literal=scheduler-leader=cp-2",
        )  # fmt: skip
        assert ex01_tour.check(link) == []
        link.kubectl("-n", "ex01", "patch", "configmap", "tour", "-p", '{"data":{"hosts":"99"}}')
        assert ex01_tour.check(link) == [f"the tour's hosts is '99'; the lab has {nodes} Nodes"]
    finally:
        link.kubectl("delete", "namespace", "ex01", "--wait=false", check=False)


def test_an_api_that_does_not_answer_is_one_usage_line(apiserver: ApiServer, tmp_path: Path) -> None:
    pki = apiserver.pki
    dead = Credentials(f"https://127.0.0.1:{free_port()}", pki.ca, None, pki.alice_cert, pki.alice_key)
    link = LabLink("gone", credentials=dead, kubeconfig=tmp_path / "none")
    with pytest.raises(UsageError) as caught:
        link.require_up()
    assert len(str(caught.value).splitlines()) == 1
    assert str(caught.value).startswith("lab gone does not answer at https://127.0.0.1:")
    assert "nestlab status --name gone" in str(caught.value)


def test_a_lab_that_does_not_exist_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    with pytest.raises(UsageError, match="no lab named 'nope'"):
        LabLink("nope")
