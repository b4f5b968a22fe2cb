"""The e2e fixture ladder: ``lab_spec`` -> ``lab_up`` (one teaching lab for the whole session).

The lab is the default spec (3 hosts, 3 control-plane nodes, 2 load balancers, the depot) under
its own name and networks (198.18.100.0/24, VIP .5) so it never meets a lab the user has on the
machine. It is stood up with the real ``nestlab`` command and taken down in the finalizer, also when
a test fails; the lab's logs (ansible, node consoles) are copied to the session's temp directory
first. ``NESTLAB_E2E_KEEP=1`` leaves the lab up for inspection (``nestlab down --name e2e`` after);
``NESTLAB_E2E_REUSE=1`` (with KEEP) uses a lab that is already up as it is, without re-running ``up``.
In a whole-suite run, ``up`` starts while the last integration tests run (:mod:`tests.e2e.early_up`).

When a test that uses the lab fails, :mod:`tests.e2e.artifacts` keeps what explains it (the API's
view, pod consoles, agent/controller/API server journals since the test began) in a directory of
the test's own, and the failure report says where (section "e2e artifacts").
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from nestlab.paths import LabFiles, repo_root
from nestlab.runtime import proc
from tests.e2e.early_up import EarlyUp, nestlab_command, write_spec
from tests.integration.api.conftest import kubectl_120  # noqa: F401 - a fixture the e2e modules use

NAME = "e2e"
UP_TIMEOUT_S = 3600.0  # a cold up builds the node image (minutes) before nine nodes are provisioned
COMMAND_TIMEOUT_S = 600.0
KUBECTL = "kubectl"  # the machine's modern kubectl; Debian's 1.20 comes from the kubectl_120 fixture
STARTED = pytest.StashKey[datetime]()
"""When the test began (its first fixture): the journals kept on failure start there."""
EARLY = pytest.StashKey[EarlyUp]()
"""The lab's ``up`` started alongside the last integration tests (:mod:`tests.e2e.early_up`)."""


@dataclass(frozen=True)
class LiveLab:
    """A lab that ``nestlab up`` stood up."""

    name: str
    spec: Path
    files: LabFiles
    up_output: str
    """What ``nestlab up`` printed."""


def nestlab(*args: str, timeout: float = COMMAND_TIMEOUT_S, check: bool = True) -> proc.Result:
    """Run the real ``nestlab`` command of this venv."""
    return proc.run(nestlab_command(*args), timeout=timeout, check=check)


def pytest_configure(config: pytest.Config) -> None:
    early = EarlyUp(NAME, repo_root() / "build" / "e2e", UP_TIMEOUT_S)
    config.stash[EARLY] = early
    config.pluginmanager.register(early, "nestlab-e2e-early-up")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test under tests/e2e is an e2e test (``make e2e`` selects by the marker, whether or not
    its module says so); tests that take the shared lab down run last, whatever module they are in."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: item.get_closest_marker("lab_teardown") is not None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failed setup or test that has the lab, keep the artifacts before any fixture is torn down."""
    report = yield
    if report.failed and report.when in ("setup", "call"):
        funcargs = getattr(item, "funcargs", {})
        lab = next((value for value in funcargs.values() if isinstance(value, LiveLab)), None)
        if lab is not None:
            namespace = funcargs.get("namespace")
            try:
                from tests.e2e import artifacts

                kept = artifacts.collect(
                    lab,
                    item.nodeid,
                    namespace if isinstance(namespace, str) else None,
                    item.stash.get(STARTED, datetime.now(UTC)),
                )
                where = f"kept in {kept}"
            except Exception as exc:  # collecting must never turn into a second failure
                where = f"not kept: {type(exc).__name__}: {exc}"
            report.sections.append(("e2e artifacts", where))
            item.user_properties.append(("e2e_artifacts", where))
    return report


@pytest.fixture(autouse=True)
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Where this test's artifacts go if it fails; cleared of a previous run's, the start time noted."""
    from tests.e2e import artifacts

    request.node.stash[STARTED] = datetime.now(UTC)
    directory = artifacts.directory_for(request.node.nodeid)
    shutil.rmtree(directory, ignore_errors=True)
    return directory


@pytest.fixture(params=["modern", "1.20"])
def kubectl_binary(request: pytest.FixtureRequest) -> str:
    """The machine's kubectl, then Debian's kubectl 1.20."""
    return KUBECTL if request.param == "modern" else str(request.getfixturevalue("kubectl_120"))


@pytest.fixture
def kubectl_old(request: pytest.FixtureRequest) -> str:
    """Debian's kubectl 1.20 (the fixture of tests/integration/api, downloaded once and cached)."""
    return str(request.getfixturevalue("kubectl_120"))


@pytest.fixture(scope="session")
def lab_spec(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teaching lab's spec, moved to networks of its own (the early ``up``'s, if it started)."""
    early = request.config.stash[EARLY]
    return early.spec or write_spec(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="session")
def lab_up(
    request: pytest.FixtureRequest, lab_spec: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveLab]:
    """The teaching lab, up and provisioned; removed at the end of the session whatever happens."""
    if os.geteuid() != 0:
        pytest.skip("a local lab needs root (bridges, nspawn, mounts)")
    files = LabFiles.named(NAME)
    try:
        if os.environ.get("NESTLAB_E2E_REUSE") == "1" and files.kubeconfig.is_file():
            # Several people test against one running lab: nobody re-ups it under the others.
            yield LiveLab(NAME, lab_spec, files, "reused: NESTLAB_E2E_REUSE=1")
            return
        output = request.config.stash[EARLY].take()
        if output is None:
            output = nestlab("up", str(lab_spec), "--name", NAME, timeout=UP_TIMEOUT_S).stdout
        yield LiveLab(NAME, lab_spec, files, output)
    finally:
        if files.logs.is_dir():
            shutil.copytree(files.logs, tmp_path_factory.mktemp("lab-logs"), dirs_exist_ok=True)
        if os.environ.get("NESTLAB_E2E_KEEP") != "1":
            nestlab("down", "--name", NAME, check=False)


@pytest.fixture(scope="module")
def agents(lab_up: LiveLab) -> LiveLab:
    """The lab, once every host's agent has registered a Ready Node."""
    from tests.e2e.labtools import POD_TIMEOUT_S, kubectl, nodes, wait_for

    hosts = nodes(lab_up, "host")

    def ready() -> bool:
        out = kubectl(lab_up, "get", "nodes", "-o", "json", check=False)
        if out.returncode != 0:
            return False
        items = json.loads(out.stdout)["items"]
        ready_nodes = {
            n["metadata"]["name"]
            for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))
        }
        return set(hosts) <= ready_nodes

    wait_for(ready, "every host's Node Ready", timeout=POD_TIMEOUT_S)
    return lab_up


@pytest.fixture
def namespace(agents: LiveLab, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own (a deleted one stays Terminating for a while)."""
    from tests.e2e.labtools import kubectl

    name = f"pods-{zlib.crc32(request.node.name.encode()):08x}"
    kubectl(agents, "create", "namespace", name)
    yield name
    kubectl(agents, "delete", "pods", "--all", "-n", name, "--wait=false", check=False)
    kubectl(agents, "delete", "namespace", name, "--wait=false", check=False)
