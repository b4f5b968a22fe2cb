"""Which Ansible strategy a lab's playbook runs with: Mitogen by default, stock Ansible on request."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from nestlab.errors import UsageError
from nestlab.provision.ansible import STRATEGY_ENV, strategy_env


def test_mitogen_is_the_default_and_its_strategy_plugins_exist() -> None:
    env = strategy_env({})
    assert env["ANSIBLE_STRATEGY"] == "mitogen_linear"
    plugins = Path(env["ANSIBLE_STRATEGY_PLUGINS"])
    assert (plugins / "mitogen_linear.py").is_file()  # the installed package's plugin, not a guess


def test_linear_runs_stock_ansible() -> None:
    assert strategy_env({STRATEGY_ENV: "linear"}) == {"ANSIBLE_STRATEGY": "linear"}


def test_an_unknown_strategy_is_refused_by_name() -> None:
    with pytest.raises(
        UsageError, match=r"NESTLAB_ANSIBLE_STRATEGY='free' is not a strategy.*mitogen_linear, linear"
    ):
        strategy_env({STRATEGY_ENV: "free"})


def test_missing_mitogen_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match=r"make bootstrap.*NESTLAB_ANSIBLE_STRATEGY=linear"):
        strategy_env({})
