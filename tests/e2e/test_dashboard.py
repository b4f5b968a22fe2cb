"""``nestlab dashboard`` on the real lab, in real headless Chromium.

The command runs as a process against the lab (its printed admin link logs the browser in), the
pages render the lab's real state, and screenshots of the inventory, a host, a namespace and the
attestation views are kept under ``<e2e artifacts>/dashboard/``. Then a host is stopped with
``nestlab node stop`` and the open inventory page must show it stopped without a reload; the time
from the stop to the page changing is measured and reported (the issue's figure is 10 s), the
host is started again in a finalizer and the test waits for its Node Ready.

Shared lab: another engineer stops hosts for exercises, so the host-stop test first waits for its
host to be running and Ready, and treats a host someone else already stopped as a reason to wait.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nestlab import lifecycle
from tests.e2e import artifacts
from tests.e2e.conftest import LiveLab, nestlab
from tests.e2e.labtools import (
    POD_TIMEOUT_S,
    RESTORE_TIMEOUT_S,
    apply,
    hosts_ready,
    kubectl,
    node_ready,
    wait_for,
    wait_phase,
)
from tests.integration.dashboard.browser import chromium, wait_css

pytestmark = [pytest.mark.e2e, pytest.mark.root]

HOST = "esx-03"  # the host; it also carries cp-3 and the depot
NAMESPACE = f"dash-e2e-{uuid.uuid4().hex[:6]}"  # a fresh one per run: a deleted one stays Terminating a while
TARGET_S = 10.0  # the issue: the page shows a stopped host within 10 s (measured and reported)
SHOW_S = 120.0  # the test's own deadline for the page to change: generous, never the figure asserted
START_S = 60.0  # the dashboard process printing its URL
COMMAND = (str(Path(sys.executable).parent / "nestlab"), "dashboard")  # this venv's command


def screenshots() -> Path:
    directory = artifacts.root() / "dashboard"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def dashboard_url(
    agents: LiveLab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """(base URL, admin link, its log) of ``nestlab dashboard -vv`` on a free port, stopped by PID at the end."""
    log = tmp_path_factory.mktemp("dashboard") / "dashboard.log"
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [*COMMAND, "--name", agents.name, "--port", "0", "-vv"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_S
        while not (match := re.search(r"(http://\S+)/login/admin\?key=\S+", log.read_text())):
            assert process.poll() is None, f"nestlab dashboard exited {process.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"nestlab dashboard printed no URL: {log.read_text()}"
            time.sleep(0.1)
        yield match.group(1), match.group(0), log
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(dashboard_url: tuple[str, str, Path]) -> Iterator[WebDriver]:
    with chromium() as driver:
        driver.get(dashboard_url[1])
        wait_css(driver, "#live", "the admin session")
        yield driver


@pytest.fixture(scope="module")
def team(agents: LiveLab) -> Iterator[str]:
    """A namespace with a quota and one running pod microVM."""
    kubectl(agents, "create", "namespace", NAMESPACE, check=False)
    apply(agents, {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "limits", "namespace": NAMESPACE},
                   "spec": {"hard": {"pods": "4", "limits.memory": "1Gi", "limits.cpu": "2"}}})  # fmt: skip
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "web", "image": "depot:5000/nestlab/web:1",
                                 "resources": {"limits": {"memory": "128Mi", "cpu": "250m"}}}]},
    }  # fmt: skip
    apply(agents, pod)
    wait_phase(agents, NAMESPACE, "web", ("Running",))
    yield NAMESPACE
    kubectl(agents, "delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _shot(driver: WebDriver, url: str | None, name: str, selector: str) -> Path:
    """Open ``url`` (None: stay), wait for ``selector``, keep a screenshot named ``name``."""
    if url is not None:
        driver.get(url)
    wait_css(driver, selector, f"the {name} view")
    path = screenshots() / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot of {driver.current_url}"
    assert path.stat().st_size > 0
    return path


def test_views_render_the_lab_and_are_kept_as_screenshots(
    agents: LiveLab, team: str, dashboard_url: tuple[str, str, Path], browser: WebDriver
) -> None:
    base = dashboard_url[0]
    pod = json.loads(kubectl(agents, "get", "pod", "web", "-n", team, "-o", "json").stdout)
    host = pod["spec"]["nodeName"]
    # The inventory: every host, the cp/lb/depot nodes on them, the pod with a QEMU pid.
    browser.get(f"{base}/")
    for name in ("esx-01", "esx-02", "esx-03"):
        wait_css(browser, f'section[data-host="{name}"]', f"host {name}")
    for name in ("cp-1", "cp-2", "cp-3", "lb-1", "lb-2", "depot"):
        wait_css(browser, f'[data-node="{name}"]', f"node {name}")
    wait_css(
        browser,
        f'section[data-host="{host}"]',
        "the pod's QEMU pid",
        check=lambda e: re.search(rf"{team}/web \(pid \d+\)", e.text) is not None,
    )
    wait_css(browser, 'tr[data-probe="API via VIP"] td.ok', "the VIP's health")
    shots = [_shot(browser, None, "inventory", f'section[data-host="{host}"]')]
    # A host: the pod microVM with pid, memory and the signed pod kernel read on the host.
    shots.append(_shot(browser, f"{base}/hosts/{host}", "host", f'tr[data-pod="{team}/web"]'))
    # 128Mi limit + the pod VM overhead; read through wait_css: a live update may replace the row.
    wait_css(browser, f'tr[data-pod="{team}/web"]', "the VM memory", check=lambda e: "160 MiB" in e.text)
    wait_css(
        browser,
        f'tr[data-pod="{team}/web"]',
        "the pod kernel",
        check=lambda e: "nestlab-pod-kernel" in e.text,
    )
    # A namespace: quota used/limit, pods, events (the agent's Started with the QEMU pid).
    shots.append(_shot(browser, f"{base}/namespaces/{team}", "namespace", 'tr[data-quota="pods"]'))
    wait_css(browser, 'table.events tr[data-reason="Started"]', "the agent's Started event")
    wait_css(browser, 'tr[data-quota="pods"]', "quota use", check=lambda e: "1" in e.text and "4" in e.text)
    # Attestation: a verdict per host.
    shots.append(
        _shot(browser, f"{base}/attestation", "attestation", f'tr[data-host="{host}"] [data-verdict]')
    )
    shots.append(_shot(browser, f"{base}/control-plane", "control-plane", 'tr[data-node="cp-1"]'))
    print("screenshots:", *shots)


def _whole(lab: LiveLab) -> bool:
    """Every node running and every host's Node Ready: stopping a host then leaves etcd a quorum."""
    nodes = lifecycle.status(lab.name, check_ssh=False)
    return all(n.state == "running" for n in nodes) and hosts_ready(lab)


def _running(lab: LiveLab) -> set[str]:
    """The nodes whose machine runs (the substrate's view, no SSH: `nestlab status` adds SSH checks)."""
    return {str(n.name) for n in lifecycle.status(lab.name, check_ssh=False) if n.state == "running"}


def _shown_stopped(browser: WebDriver) -> bool:
    selector = f'section[data-host="{HOST}"][data-state="stopped"]'
    return bool(browser.find_elements(By.CSS_SELECTOR, selector))


def _first_change(browser: WebDriver) -> bool:
    """A node of the host's failure domain (cp-3, the depot: stopped first) is shown stopped."""
    script = f"""return Array.from(document.querySelectorAll('section[data-host="{HOST}"] [data-node]'))
        .some(e => e.textContent.includes(", stopped)"));"""
    return bool(browser.execute_script(script))


def test_the_page_shows_a_stopped_host_live(
    agents: LiveLab, dashboard_url: tuple[str, str, Path], browser: WebDriver, request: pytest.FixtureRequest
) -> None:
    # Someone may be running a host-failure exercise: start from a whole lab (a second host down
    # with ours would take etcd's quorum with it).
    wait_for(
        lambda: _whole(agents), "the whole lab up before stopping a host", RESTORE_TIMEOUT_S, transient=True
    )
    browser.get(f"{dashboard_url[0]}/")
    wait_css(browser, f'section[data-host="{HOST}"][data-state="ok"]', f"{HOST} shown up")
    browser.execute_script("window.__notReloaded = true;")

    def restart() -> None:
        if HOST not in _running(agents):
            nestlab("node", "start", "--name", agents.name, HOST, timeout=RESTORE_TIMEOUT_S, check=False)
        wait_for(
            lambda: node_ready(agents, HOST),
            f"{HOST} Node Ready after the restart",
            POD_TIMEOUT_S,
            transient=True,
        )

    request.addfinalizer(restart)
    # The stop runs beside the watching browser: the page may change before the command returns
    # (the host's processes are gone before the command has restored the routes).
    stop: dict[str, object] = {}

    def stop_host() -> None:
        try:
            nestlab("node", "stop", "--name", agents.name, HOST, timeout=RESTORE_TIMEOUT_S)
        except Exception as exc:  # reported below
            stop["error"] = exc
        stop["returned"] = time.monotonic()

    def watch_power() -> None:  # the ground truth: when the substrate says the host is off
        while "off" not in stop and time.monotonic() - began < RESTORE_TIMEOUT_S:
            if HOST not in _running(agents):
                stop["off"] = time.monotonic()
            time.sleep(0.2)

    worker = threading.Thread(target=stop_host, name="node stop")
    power = threading.Thread(target=watch_power, name="power")
    began = time.monotonic()
    worker.start()
    power.start()
    try:
        first = None
        while not _shown_stopped(browser):
            now = time.monotonic()
            if first is None and _first_change(browser):
                first = now
            returned = stop.get("returned")
            if isinstance(returned, float) and now - returned > SHOW_S:
                pytest.fail(
                    f"{HOST} stopped, but the page did not show it {SHOW_S:g}s later:\n{browser.page_source[-3000:]}"
                )
            if now - began > RESTORE_TIMEOUT_S:
                pytest.fail(f"`nestlab node stop {HOST}` and the page: nothing after {RESTORE_TIMEOUT_S:g}s")
            time.sleep(0.05)
        shown = time.monotonic()
    finally:
        worker.join(timeout=RESTORE_TIMEOUT_S)
        stop.setdefault("off", time.monotonic())  # ends the power watch if the page won the race
        power.join(timeout=60)
        lines = dashboard_url[2].read_text(errors="replace").splitlines()
        kept = [line for line in lines if f"node {HOST}:" in line or ": change " in line][-60:]
        print(
            f"stop began {time.time() - (time.monotonic() - began):.2f} (epoch); dashboard log:",
            *kept,
            sep="\n  ",
        )
    if "error" in stop:  # a concurrent exercise may have stopped it first: fine if it is down
        assert HOST not in _running(agents), f"nestlab node stop {HOST} failed: {stop['error']}"
        print(f"note: nestlab node stop {HOST} failed ({stop['error']}), but the host is down")
    assert browser.execute_script("return window.__notReloaded === true;"), (
        "the page reloaded instead of updating"
    )
    _shot(browser, None, "host-stopped", f'section[data-host="{HOST}"][data-state="stopped"]')
    returned = float(stop["returned"])  # type: ignore[arg-type]
    request.node.user_properties.append(("shown_after_stop_began_s", round(shown - began, 2)))
    request.node.user_properties.append(("stop_command_s", round(returned - began, 2)))
    first_s = (first or shown) - began
    off = float(stop["off"])  # type: ignore[arg-type]
    request.node.user_properties.append(("shown_after_host_off_s", round(shown - off, 2)))
    request.node.user_properties.append(("first_change_shown_s", round(first_s, 2)))
    # A clean stop powers off the placed nodes, then the host: the host's own process ends last,
    # right before the command returns. The page's delay is "shown - returned" (negative: sooner).
    print(
        f"{HOST}: first node of its failure domain shown stopped {first_s:.2f}s after `nestlab node stop`"
        f" began; the host shown stopped {shown - began:.2f}s after it began, {shown - returned:+.2f}s"
        f" from the command's return (the clean stop took {returned - began:.2f}s); target {TARGET_S:g}s"
        f" from the stop: {'met' if shown - began <= TARGET_S else 'MISSED'}; `nestlab status` said it off"
        f" {off - began:.2f}s after the stop began: the page {shown - off:+.2f}s from then"
    )
