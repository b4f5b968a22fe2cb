"""The dashboard against the real API server, in real headless Chromium.

A lab user with view rights in one namespace logs in through the form (the API's
/nestlab/v1/login), sees the objects this test created there (pod microVM with its QEMU pid from
the agent's Started event, quota use, events), sees a new pod appear without reloading the page
(the watch -> server-sent event -> fragment path), and is told what RBAC does not let them read.
The lab administrator's link shows the lab-wide inventory (a Node this test registered).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from nestlab.api.client import Credentials
from nestlab.dashboard import app as dashboard_app
from nestlab.dashboard.sessions import Sessions
from tests.integration.api.conftest import ADMIN_TOKEN, ApiServer
from tests.integration.dashboard.browser import DashboardThread, chromium, log_in, wait_css

pytestmark = pytest.mark.integration

PASSWORD = "Dash-Secret-123"  # noqa: S105 - a test credential
LIVE_S = 30.0  # generous: the watch event, the stream and the fetch take well under a second


def _ok(result: tuple[int, Any], *codes: int) -> Any:
    code, body = result
    assert code in (codes or (200, 201)), (code, body)
    return body


def _pod(name: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "depot:5000/nestlab/web:1",
                    "resources": {"limits": {"memory": memory, "cpu": "100m"}},
                }
            ]
        },
    }


@pytest.fixture(scope="module")
def lab_objects(apiserver: ApiServer) -> Iterator[dict[str, str]]:
    """A namespace with a quota, a running pod on a registered host, its Started event, and a user."""
    suffix = uuid.uuid4().hex[:6]
    ns, user, host = f"dash-{suffix}", f"dash-{suffix}", "esx-07"
    _ok(apiserver.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}}))
    _ok(apiserver.request("POST", "/api/v1/nodes", {"metadata": {"name": host}}), 201, 409)
    quota = {"metadata": {"name": "team-limits"}, "spec": {"hard": {"pods": "5", "limits.memory": "2Gi"}}}
    _ok(apiserver.request("POST", f"/api/v1/namespaces/{ns}/resourcequotas", quota))
    pod = _ok(apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", _pod("web", "256Mi")))
    binding = {"metadata": {"name": "web"}, "target": {"kind": "Node", "name": host}}
    _ok(apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods/web/binding", binding))
    running = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    _ok(
        apiserver.request(
            "PATCH",
            f"/api/v1/namespaces/{ns}/pods/web/status",
            running,
            content_type="application/merge-patch+json",
        )
    )
    event = {
        "metadata": {"name": "web.started"},
        "involvedObject": {"kind": "Pod", "namespace": ns, "name": "web", "uid": pod["metadata"]["uid"]},
        "reason": "Started",
        "type": "Normal",
        "message": "pod VM started (QEMU pid 4242)",
        "lastTimestamp": "2026-12-06T02:00:00Z",
        "count": 1,
    }
    _ok(apiserver.request("POST", f"/api/v1/namespaces/{ns}/events", event))
    _ok(apiserver.request("POST", "/nestlab/v1/users", {"name": user, "groups": [], "password": PASSWORD}))
    rolebinding: dict[str, Any] = {
        "metadata": {"name": "dash-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }
    _ok(
        apiserver.request(
            "POST", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings", rolebinding
        )
    )
    try:
        yield {"namespace": ns, "user": user, "host": host}
    finally:
        apiserver.request("DELETE", f"/nestlab/v1/users/{user}")
        apiserver.request("DELETE", f"/api/v1/namespaces/{ns}")


@pytest.fixture(scope="module")
def dashboard(apiserver: ApiServer) -> Iterator[tuple[DashboardThread, Sessions]]:
    admin = Credentials(apiserver.url, apiserver.pki.ca, ADMIN_TOKEN)
    sessions = Sessions(apiserver.url, admin)
    with DashboardThread(dashboard_app.build(sessions)) as served:
        yield served, sessions


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


def test_a_lab_user_logs_in_and_sees_their_namespace_live(
    apiserver: ApiServer,
    lab_objects: dict[str, str],
    dashboard: tuple[DashboardThread, Sessions],
    browser: WebDriver,
) -> None:
    served, _ = dashboard
    print(f"api {apiserver.url} dashboard {served.url}")
    ns = lab_objects["namespace"]
    log_in(browser, served.url, lab_objects["user"], PASSWORD)
    assert lab_objects["user"] in browser.find_element(By.TAG_NAME, "header").text
    wait_css(browser, ".refused", "the inventory saying what this user may not list")
    browser.get(f"{served.url}/namespaces/{ns}")

    # Live updates replace rows while the test reads them: every read is one check of a fresh element.
    def cells(row: Any) -> list[str]:
        return [c.text for c in row.find_elements(By.TAG_NAME, "td")]

    wait_css(
        browser,
        'tr[data-pod$="/web"]',
        "the pod this test created, Running, with its QEMU pid (from the agent's Started event) and "
        "its VM's memory (256Mi limit + the pod VM overhead)",
        check=lambda e: e.get_attribute("data-phase") == "Running" and {"4242", "288 MiB"} <= set(cells(e)),
    )
    wait_css(
        browser,
        'tr[data-quota="pods"]',
        "the quota row with its use",
        check=lambda e: "1" in e.text and "5" in e.text and "team-limits" in e.text,
    )
    wait_css(browser, "table.events", "the pod's Started event", check=lambda e: "Started" in e.text)

    browser.execute_script("window.__notReloaded = true;")
    started = time.monotonic()
    _ok(apiserver.request("POST", f"/api/v1/namespaces/{ns}/pods", _pod("late", "64Mi")))
    wait_css(browser, 'tr[data-pod$="/late"]', "the new pod, live", timeout=LIVE_S)
    print(f"live update: the new pod showed {time.monotonic() - started:.2f}s after its creation")
    assert browser.execute_script("return window.__notReloaded === true;"), (
        "the page reloaded instead of updating"
    )

    browser.get(f"{served.url}/hosts/{lab_objects['host']}")
    wait_css(browser, ".refused", "the host page saying nodes are not this user's to read")
    browser.find_element(By.CSS_SELECTOR, "header form button").click()
    wait_css(browser, "#username", "the login form after logging out")


def test_a_wrong_password_is_refused_in_the_form(
    dashboard: tuple[DashboardThread, Sessions], browser: WebDriver, lab_objects: dict[str, str]
) -> None:
    served, _ = dashboard
    browser.get(f"{served.url}/login")
    browser.find_element(By.ID, "username").send_keys(lab_objects["user"])
    browser.find_element(By.ID, "password").send_keys("not-the-password")
    browser.find_element(By.ID, "login").click()
    error = wait_css(browser, "#login-error", "the login error")
    assert "wrong user name or password" in error.text


def test_the_admin_link_shows_the_lab_wide_inventory(
    dashboard: tuple[DashboardThread, Sessions], browser: WebDriver, lab_objects: dict[str, str]
) -> None:
    served, sessions = dashboard
    browser.get(f"{served.url}/login/admin?key={sessions.admin_key}")
    pod = f"{lab_objects['namespace']}/web (pid 4242)"
    wait_css(
        browser,
        f'section[data-host="{lab_objects["host"]}"]',
        "the host and its pod",
        check=lambda e: pod in e.text,
    )
    wait_css(browser, f'tr[data-namespace="{lab_objects["namespace"]}"]', "the namespace row")
    browser.get(f"{served.url}/attestation")
    wait_css(
        browser, f'tr[data-host="{lab_objects["host"]}"] [data-verdict="not attested yet"]', "the verdict"
    )
