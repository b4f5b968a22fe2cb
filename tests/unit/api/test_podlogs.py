"""pods/log request checks (upstream's words) and the node-agent client's addressing and errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nestlab.api import nodeagent, podlogs, status


def pod(*containers: str, init: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": "p"},
        "spec": {
            "initContainers": [{"name": n} for n in init],
            "containers": [{"name": n} for n in containers],
        },
    }


def test_the_only_container_needs_no_name() -> None:
    assert podlogs.container_of(pod("web"), "") == "web"


def test_a_named_container_must_exist() -> None:
    assert podlogs.container_of(pod("a", "b", init=("setup",)), "setup") == "setup"
    with pytest.raises(status.ApiError) as caught:
        podlogs.container_of(pod("a", "b"), "c")
    assert (caught.value.code, str(caught.value)) == (400, "container c is not valid for pod p")


def test_several_containers_need_a_name() -> None:
    with pytest.raises(status.ApiError) as caught:
        podlogs.container_of(pod("a", "b", init=("setup",)), "")
    assert caught.value.code == 400
    assert str(caught.value) == "a container name must be specified for pod p, choose one of: [setup a b]"


def test_bad_options_are_422_naming_the_field() -> None:
    with pytest.raises(status.ApiError) as caught:
        podlogs.check_options("p", {"tailLines": "-2"}, 0)
    assert caught.value.code == 422
    assert str(caught.value) == (
        'PodLogOptions "p" is invalid: tailLines: Invalid value: -2: must be greater than or equal to 0'
    )


def node(address: str = "198.18.0.21", port: int | None = 10250) -> dict[str, Any]:
    status_: dict[str, Any] = {"addresses": [{"type": "InternalIP", "address": address}]}
    if port is not None:
        status_["daemonEndpoints"] = {"kubeletEndpoint": {"Port": port}}
    return {"metadata": {"name": "esx-01"}, "status": status_}


def test_agent_address_from_the_node() -> None:
    assert nodeagent.base_url(node()) == "https://198.18.0.21:10250"
    assert nodeagent.base_url(node("fd00::5")) == "https://[fd00::5]:10250"
    with pytest.raises(nodeagent.NoEndpointError, match="node esx-01 advertises no agent endpoint"):
        nodeagent.base_url(node(port=None))


TARGET = podlogs.LogTarget(node(), "/containerLogs/ns/p/web", {}, follow=False, what="ns/p/web")


def test_the_agents_400_reaches_the_user_as_it_is() -> None:
    text = 'previous terminated container "web" in pod "p" not found'
    error = podlogs.api_error(TARGET, nodeagent.AgentAnswerError("x answered 400", 400, text))
    assert (error.code, error.reason, str(error)) == (400, "BadRequest", text)


def test_an_unreachable_agent_is_503_naming_the_container() -> None:
    error = podlogs.api_error(TARGET, nodeagent.AgentUnreachableError("the node agent at ... did not answer"))
    assert error.code == 503
    assert "cannot get the log of ns/p/web" in str(error)


def test_missing_tls_files_are_the_callers_usage_error() -> None:
    with pytest.raises(OSError, match="No such file"):
        nodeagent.client_tls(None, Path("/nonexistent.crt"), None)


def test_an_option_of_the_wrong_type_is_400() -> None:
    with pytest.raises(status.ApiError) as caught:
        podlogs.check_options("p", {"tailLines": "x"}, 0)
    assert (caught.value.code, caught.value.reason) == (400, "BadRequest")
    assert str(caught.value) == 'tailLines: Invalid value: "x": must be a whole number'
