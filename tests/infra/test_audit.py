"""The audit log on cp-N: the policy in place, the log 0600 in a private directory, Event lines, and
a request made now found there by its Audit-Id (the API server writes its own node's log)."""

from __future__ import annotations

import json
import re
import time

import lab
from testinfra.host import Host

testinfra_hosts = lab.hosts("control-plane")

AUDIT_LOG = "/var/log/nestlab/audit.log"
AUDIT_POLICY = "/etc/nestlab/audit-policy.yaml"
WRITE_DEADLINE_S = 20.0  # the writer thread flushes within milliseconds; a loaded lab gets margin


def test_the_api_server_runs_with_the_audit_flags(host: Host) -> None:
    unit = host.file("/etc/systemd/system/nestlab-apiserver.service").content_string
    assert f"--audit-policy-file={AUDIT_POLICY}" in unit
    assert f"--audit-log-path={AUDIT_LOG}" in unit
    policy = host.file(AUDIT_POLICY)
    assert policy.exists
    assert "kind: Policy" in policy.content_string


def test_the_audit_log_is_private(host: Host) -> None:
    log = host.file(AUDIT_LOG)
    assert log.exists
    assert log.mode == 0o600
    assert host.file("/var/log/nestlab").mode == 0o700


def test_a_request_made_now_is_in_this_nodes_audit_log(host: Host) -> None:
    address = lab.node(host.backend.hostname)["address"]
    headers = host.check_output(
        "curl -s -o /dev/null -D - --cacert /etc/nestlab/pki/ca.crt"
        f" https://{address}:6443/api/v1/namespaces/default"
    )
    found = re.search(r"(?im)^audit-id:\s*(\S+)", headers)
    assert found, headers
    audit_id = found.group(1)
    deadline = time.monotonic() + WRITE_DEADLINE_S
    line = ""
    while time.monotonic() < deadline and not line:
        out = host.run(f"grep -F {audit_id} {AUDIT_LOG}")
        line = out.stdout.strip().splitlines()[-1] if out.rc == 0 else ""
        if not line:
            time.sleep(0.5)
    assert line, f"no Event with auditID {audit_id} in {AUDIT_LOG}"
    event = json.loads(line)
    assert event["kind"] == "Event"
    assert event["apiVersion"] == "audit.k8s.io/v1"
    assert event["verb"] == "get"
    assert event["objectRef"]["resource"] == "namespaces"
    assert event["responseStatus"]["code"] == 401  # anonymous: refused, and still audited


def test_every_line_of_the_audit_log_is_an_event(host: Host) -> None:
    lines = host.check_output(f"tail -n 200 {AUDIT_LOG}").splitlines()
    assert lines, "the audit log is empty"
    for line in lines:
        event = json.loads(line)
        assert event["kind"] == "Event", line
        assert event["stage"] in ("ResponseStarted", "ResponseComplete"), line  # RequestReceived omitted
