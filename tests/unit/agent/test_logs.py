"""Container logs are the console lines pod-init prefixed with the container's name."""

from __future__ import annotations

from nestlab.agent.logs import container_log

CONSOLE = "[    0.1] kernel line\npod-init: started\n[web] GET /\n[job] done\n[web] GET /x\n[web]no space\n"


def test_only_the_containers_lines_without_prefix() -> None:
    assert container_log(CONSOLE, "web") == "GET /\nGET /x\n"
    assert container_log(CONSOLE, "job") == "done\n"
    assert container_log(CONSOLE, "nosuch") == ""


def test_tail_lines() -> None:
    assert container_log(CONSOLE, "web", tail=1) == "GET /x\n"
    assert container_log(CONSOLE, "web", tail=0) == ""
