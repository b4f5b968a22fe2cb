"""pods/exec, attach, portforward: upstream's checks and messages, and the protocol negotiation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import MultiDict

from nestlab.api import nodeagent, podstreams, status
from nestlab.api.podstreams import EXEC_PROTOCOLS, Plan
from tests.unit.api.rbac_support import role_may


def query(*pairs: tuple[str, str]) -> MultiDict[str]:
    return MultiDict(pairs)


def refusal(call: Any, *args: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(status.ApiError) as caught:
        call(*args, **kwargs)
    return caught.value.code, caught.value.message


def test_booleans_decode_as_upstream() -> None:
    assert podstreams.flag([], True) is True
    assert podstreams.flag([], False) is False
    assert [podstreams.flag([v], False) for v in ("1", "true", "True", "", "yes")] == [True] * 5
    assert [podstreams.flag([v], True) for v in ("0", "false", "FALSE")] == [False] * 3


def test_exec_options_from_the_query() -> None:
    asked = podstreams.stream_options(
        query(
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi"),
            ("stdin", "true"),
            ("container", "c"),
        ),
        attach=False,
    )
    assert asked.command == ("sh", "-c", "echo hi")
    assert (asked.container, asked.stdin, asked.stdout, asked.stderr, asked.tty) == (
        "c",
        True,
        True,
        True,
        False,
    )


def test_a_terminal_has_no_stderr() -> None:
    asked = podstreams.stream_options(
        query(("command", "sh"), ("tty", "true"), ("stderr", "true")), attach=False
    )
    assert (asked.tty, asked.stdout, asked.stderr) == (True, True, False)


def test_exec_needs_a_command_and_a_stream() -> None:
    assert refusal(podstreams.stream_options, query(("stdin", "1")), attach=False) == (
        400,
        "you must specify at least 1 command",
    )
    none = query(("command", "true"), ("stdout", "false"), ("stderr", "0"))
    assert refusal(podstreams.stream_options, none, attach=False) == (
        400,
        "you must specify at least 1 of stdin, stdout, stderr",
    )


def test_attach_takes_no_command() -> None:
    asked = podstreams.stream_options(query(("command", "ignored"), ("stdin", "1")), attach=True)
    assert (asked.command, asked.stdin) == ((), True)


def pod(node: str = "esx-01", phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_the_pod_must_have_a_host() -> None:
    assert podstreams.node_of(pod(), "exec") == "esx-01"
    assert refusal(podstreams.node_of, pod(node=""), "exec") == (400, "pod p does not have a host assigned")
    assert (
        refusal(podstreams.node_of, pod(node=""), "portforward")[1] == "pod p does not have a host assigned"
    )


def test_a_completed_pod_is_refused_in_kubectls_words() -> None:
    assert refusal(podstreams.node_of, pod(phase="Succeeded"), "exec") == (
        400,
        "cannot exec into a container in a completed pod; current phase is Succeeded",
    )
    assert refusal(podstreams.node_of, pod(phase="Failed"), "attach")[1] == (
        "cannot attach a container in a completed pod; current phase is Failed"
    )
    assert refusal(podstreams.node_of, pod(phase="Succeeded"), "portforward")[1] == (
        "unable to forward port because pod is not running. Current status=Succeeded"
    )


def upgrade(protocols: str = "", upgrade_to: str = "websocket") -> dict[str, str]:
    headers = {"Connection": "Upgrade", "Upgrade": upgrade_to}
    if protocols:
        headers["Sec-WebSocket-Protocol"] = protocols
    return headers


def test_a_plain_request_needs_an_upgrade() -> None:
    assert refusal(podstreams.negotiate, {}, "exec") == (400, "Upgrade request required")
    assert refusal(podstreams.negotiate, {"Upgrade": "websocket"}, "exec")[1] == "Upgrade request required"


def test_the_clients_first_known_protocol_wins() -> None:
    assert podstreams.negotiate(upgrade("v5.channel.k8s.io,v4.channel.k8s.io"), "exec") == Plan(
        "websocket", EXEC_PROTOCOLS["v5.channel.k8s.io"]
    )
    chosen = podstreams.negotiate(upgrade("v9.channel.k8s.io, base64.channel.k8s.io"), "exec").protocol
    assert chosen is not None
    assert (chosen.name, chosen.binary, chosen.json_status) == (
        "base64.channel.k8s.io",
        False,
        False,
    )
    assert podstreams.negotiate(upgrade(), "exec").protocol == EXEC_PROTOCOLS[""]


def test_spdy_and_the_tunnel_go_to_the_spdy_adapters() -> None:
    assert podstreams.negotiate(upgrade(upgrade_to="SPDY/3.1"), "exec") == Plan("spdy")
    assert podstreams.negotiate(upgrade("SPDY/3.1+portforward.k8s.io"), "portforward") == Plan("tunnel")
    code, message = refusal(podstreams.negotiate, upgrade("SPDY/3.1+portforward.k8s.io"), "exec")
    assert code == 400
    assert message.startswith("requested protocol(s) are not supported")
    v4 = podstreams.negotiate(upgrade("v4.channel.k8s.io"), "portforward")
    assert v4.kind == "websocket"
    assert v4.protocol is not None
    assert v4.protocol.name == "v4.channel.k8s.io"


def test_frames_binary_and_base64() -> None:
    v5, b64 = EXEC_PROTOCOLS["v5.channel.k8s.io"], EXEC_PROTOCOLS["base64.channel.k8s.io"]
    assert v5.encode(1, b"hi") == b"\x01hi"
    assert v5.decode(b"\x00abc") == (0, b"abc")
    assert v5.decode(b"") is None
    assert b64.encode(2, b"hi") == "2aGk="
    assert b64.decode("0aGk=") == (0, b"hi")
    assert b64.decode("x") is None
    assert v5.close_channel
    assert not EXEC_PROTOCOLS["v4.channel.k8s.io"].close_channel


def test_pre_v4_clients_get_the_error_text() -> None:
    success = json.dumps({"metadata": {}, "status": "Success"}).encode()
    failure = json.dumps({"status": "Failure", "message": "command terminated with non-zero exit code"})
    assert podstreams.status_text(success) == b""
    assert podstreams.status_text(failure.encode()) == b"command terminated with non-zero exit code"
    assert podstreams.status_text(b"plain words") == b"plain words"


def test_ports_from_the_query() -> None:
    assert podstreams.ports_of(query(("ports", "80"), ("ports", "8080,9090"))) == (80, 8080, 9090)
    assert refusal(podstreams.ports_of, query()) == (400, 'query parameter "ports" is required')
    assert refusal(podstreams.ports_of, query(("ports", "0")))[0] == 400
    assert refusal(podstreams.ports_of, query(("ports", "http")))[0] == 400


def test_agent_failures_name_the_node() -> None:
    refused = podstreams.agent_failure(
        "esx-02", nodeagent.AgentAnswerError("x", 404, 'container "c" of pod ns/p is not running')
    )
    assert (refused.code, refused.reason, refused.message) == (
        404,
        "NotFound",
        'container "c" of pod ns/p is not running (node esx-02)',
    )
    dead = podstreams.agent_failure(
        "esx-02", nodeagent.AgentUnreachableError("agent at https://a:10250 away")
    )
    assert (dead.code, dead.reason) == (503, "ServiceUnavailable")
    assert dead.message == "error dialing backend: node esx-02: agent at https://a:10250 away"


def test_the_agent_query_carries_the_options() -> None:
    from nestlab.api.streamtypes import StreamOptions

    options = StreamOptions("c", ("sh", "-c", "exit 3"), stdin=True, tty=True, stderr=False)
    assert nodeagent.exec_query(options) == [
        ("command", "sh"),
        ("command", "-c"),
        ("command", "exit 3"),
        ("stdin", "1"),
        ("stdout", "1"),
        ("stderr", "0"),
        ("tty", "1"),
    ]


def test_edit_and_admin_may_exec_view_may_not() -> None:
    for sub in ("pods/exec", "pods/attach", "pods/portforward"):
        assert role_may("edit", "create", sub)
        assert role_may("admin", "create", sub)
        assert not role_may("view", "create", sub)


def test_discovery_shows_the_subresources_as_upstream() -> None:
    from nestlab.api import discovery

    listed = discovery.resource_list("", "v1")
    assert listed is not None
    entries = {r["name"]: r for r in listed["resources"]}
    assert entries["pods/exec"]["kind"] == "PodExecOptions"
    assert entries["pods/portforward"]["verbs"] == ["create", "get"]
    assert entries["pods/attach"]["kind"] == "PodAttachOptions"
