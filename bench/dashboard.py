"""Dashboard first paint and update latency, in real headless Chromium against a running lab.

Run as root on a lab that `nestlab up` built:  .venv/bin/python bench/dashboard.py --name LAB --runs 10
Starts ``nestlab dashboard`` on a free port (as a process, as a user would), logs Chromium in with
the printed admin link, then measures:

- login to inventory: from opening the admin link (a new session: its watches start empty) to the
  page showing every host;
- first paint: reloads of the inventory with a warm session, Chromium's first-contentful-paint
  (navigation start -> first paint, from the Paint Timing API);
- update latency: `kubectl create namespace` returned (the change is committed) -> the new row is in
  the open page's DOM, stamped by a MutationObserver in the page (both clocks are this machine's
  wall clock). That path is API watch -> the session's store -> server-sent event -> fragment fetch.

Prints every run and the p50 of each; creates namespaces ``dash-bench-*`` and deletes them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.conftest import LiveLab
from tests.e2e.labtools import attach, kubectl, nodes
from tests.integration.dashboard.browser import chromium, wait_css

COMMAND = (str(Path(sys.executable).parent / "nestlab"), "dashboard")  # this venv's command
OBSERVE = """
const name = arguments[0];
window.__seen = null;
const found = () => document.querySelector(`tr[data-namespace="${name}"]`);
new MutationObserver((_, observer) => {
  if (found() && window.__seen === null) { window.__seen = Date.now(); observer.disconnect(); }
}).observe(document.getElementById("view"), { childList: true, subtree: true });
"""
FCP = (
    "return performance.getEntriesByType('paint')"
    ".filter(e => e.name === 'first-contentful-paint')[0]?.startTime ?? null;"
)


def p50(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "-"


def logins(browser: WebDriver, admin_link: str, hosts: list[str], runs: int) -> list[float]:
    """Seconds from opening the admin link (a new session) to every host on the page."""
    times = []
    for run in range(runs):
        browser.delete_all_cookies()
        began = time.monotonic()
        browser.get(admin_link)
        for host in hosts:
            wait_css(browser, f'section[data-host="{host}"]', f"host {host}", timeout=120)
        times.append(time.monotonic() - began)
        print(f"login {run + 1}: inventory with {len(hosts)} hosts after {times[-1] * 1000:.0f} ms")
    return times


def paints(browser: WebDriver, base: str, host: str, runs: int) -> list[float]:
    """first-contentful-paint of the inventory, warm session, in seconds."""
    times = []
    for run in range(runs):
        browser.get(f"{base}/")
        wait_css(browser, f'section[data-host="{host}"]', "the inventory")
        fcp = browser.execute_script(FCP)
        if fcp is not None:
            times.append(float(fcp) / 1000)
            print(f"first paint {run + 1}: {float(fcp):.0f} ms")
    return times


def updates(
    browser: WebDriver, lab: LiveLab, base: str, host: str, runs: int, *, created: list[str]
) -> list[float]:
    """Seconds from a namespace committed to its row in the open page's DOM."""
    browser.get(f"{base}/")
    wait_css(browser, f'section[data-host="{host}"]', "the inventory")
    times = []
    for run in range(runs):
        name = f"dash-bench-{uuid.uuid4().hex[:8]}"
        browser.execute_script(OBSERVE, name)
        kubectl(lab, "create", "namespace", name)
        committed = time.time()
        created.append(name)
        deadline = time.monotonic() + 60
        while (seen := browser.execute_script("return window.__seen;")) is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"namespace {name} never appeared on the page")
            time.sleep(0.02)
        times.append(max(0.0, float(seen) / 1000 - committed))
        print(f"update {run + 1}: {name} on the page {times[-1] * 1000:.0f} ms after kubectl returned")
    return times


def start(lab: LiveLab, log: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """``nestlab dashboard`` on a free port: (process, base URL, admin link)."""
    with log.open("w") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and command
            [*COMMAND, "--name", lab.name, "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while not (match := re.search(r"(http://\S+)/login/admin\?key=\S+", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"nestlab dashboard did not start: {log.read_text()}")
        time.sleep(0.1)
    return process, match.group(1), match.group(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="default", help="the lab")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    lab = attach(args.name)
    hosts = nodes(lab, "host")
    log = Path(tempfile.mkstemp(prefix="dashboard-bench-", suffix=".log")[1])
    process, base, admin_link = start(lab, log)
    created: list[str] = []
    try:
        with chromium() as browser:
            login = logins(browser, admin_link, hosts, max(1, args.runs // 2))
            paint = paints(browser, base, hosts[0], args.runs)
            update = updates(browser, lab, base, hosts[0], args.runs, created=created)
        print(f"p50 login to inventory: {p50(login)} ({len(login)} runs)")
        print(f"p50 first paint (first-contentful-paint): {p50(paint)} ({len(paint)} runs)")
        print(f"p50 update latency (committed -> in the page): {p50(update)} ({len(update)} runs)")
    finally:
        for name in created:
            kubectl(lab, "delete", "namespace", name, "--wait=false", check=False)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        log.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
