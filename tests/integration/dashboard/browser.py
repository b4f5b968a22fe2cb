"""Real headless Chromium (Debian's, through its chromedriver) and a dashboard served from a thread.

Shared by the dashboard's integration test, its e2e test and bench/dashboard.py. The browser is
stopped (and its profile directory removed) by the context manager, also on failure.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nestlab.dashboard.serve import serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
START_S = 30.0  # the dashboard thread binding its port on a loaded machine


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[WebDriver]:
    """A headless Chromium session."""
    profile = Path(tempfile.mkdtemp(prefix="nestlab-chromium-"))
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces it may not get
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


class DashboardThread:
    """The dashboard application served on a free loopback port from a thread with its own loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="dashboard", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._stop = asyncio.Event()
            await serve(self.app, "127.0.0.1", 0, self._ready, self._stop)

        try:
            self._loop.run_until_complete(run())
        except BaseException as exc:  # reported by start()
            self._error = exc
        finally:
            self._loop.close()

    def _ready(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> DashboardThread:
        self._thread.start()
        deadline = time.monotonic() + START_S
        while not self.url:
            if self._error is not None or not self._thread.is_alive():
                raise AssertionError(f"the dashboard did not start: {self._error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the dashboard did not listen within {START_S:g}s")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)


def wait_css(
    driver: WebDriver,
    selector: str,
    what: str,
    timeout: float = 30.0,
    check: Callable[[Any], bool] | None = None,
) -> Any:
    """The first element matching ``selector`` (that passes ``check``), polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e for e in driver.find_elements(By.CSS_SELECTOR, selector) if check is None or _safe(check, e)
        ]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: no {selector} within {timeout:g}s on {driver.current_url}:\n{driver.page_source[-3000:]}"
            )
        time.sleep(0.05)


def _safe(check: Callable[[Any], bool], element: Any) -> bool:
    try:
        return bool(check(element))
    except Exception:  # the live update replaced the element while we read it
        return False


def log_in(driver: WebDriver, base: str, user: str, password: str) -> None:
    """Fill the login form and submit it."""
    driver.get(f"{base}/login")
    driver.find_element(By.ID, "username").send_keys(user)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "login").click()
    wait_css(driver, "#live", "the live indicator after logging in")
