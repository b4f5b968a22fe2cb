"""``nestlab user|login|credential`` with click's CliRunner against a fake lab API."""

from __future__ import annotations

import datetime
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from nestlab import logins
from nestlab.api import status
from nestlab.commands import users
from nestlab.commands.users import Connect, credential, login, user
from nestlab.paths import LabFiles

SERVER = "https://198.18.0.100:6443"
CLUSTER = {"server": SERVER, "certificate-authority-data": "Q0EgZGF0YQ=="}
LATER = "2099-01-01T00:00:00Z"


class FakeApi:
    """The identity routes' answers, kept in a dict; records every call."""

    def __init__(self) -> None:
        self.users: dict[str, dict[str, Any]] = {}
        self.passwords: dict[str, str] = {}
        self.calls: list[tuple[str, str, Any, bool]] = []
        self.expiration = LATER

    def call(self, method: str, path: str, body: Any = None, *, admin: bool = True) -> dict[str, Any]:
        self.calls.append((method, path, body, admin))
        name = path.rpartition("/")[2]
        if path == "/nestlab/v1/login":
            if self.passwords.get(body["username"]) != body["password"]:
                raise status.ApiError(401, "Unauthorized", "invalid user name or password")
            return {"token": f"token-of-{body['username']}", "expirationTimestamp": self.expiration}
        if method == "POST":
            if body["name"] in self.users:
                raise status.already_exists("users", "identity.nestlab.dev", body["name"])
            if len(body["password"]) < 8:
                cause = status.Cause(
                    "password", "is empty" if not body["password"] else "must have at least 8 characters"
                )
                raise status.invalid("User", "identity.nestlab.dev", body["name"], [cause])
            self.users[body["name"]] = {
                "name": body["name"],
                "groups": body["groups"],
                "createdAt": "2026-12-05T23:00:00Z",
            }
            self.passwords[body["name"]] = body["password"]
            return self.users[body["name"]]
        if method == "GET" and name == "users":
            return {"items": list(self.users.values())}
        if name not in self.users:
            raise status.not_found("users", "identity.nestlab.dev", name)
        if method == "PATCH":
            return self.patch(name, body)
        if method == "DELETE":
            self.passwords.pop(name)
            return self.users.pop(name)
        return self.users[name]

    def patch(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        if "password" in body and len(body["password"]) < 8:
            cause = status.Cause("password", "must have at least 8 characters")
            raise status.invalid("User", "identity.nestlab.dev", name, [cause])
        if "groups" in body and any(not g or "," in g for g in body["groups"]):
            cause = status.Cause("groups[0]", "must not be empty or contain a comma")
            raise status.invalid("User", "identity.nestlab.dev", name, [cause])
        self.passwords[name] = body.get("password", self.passwords[name])
        if "groups" in body:
            self.users[name]["groups"] = body["groups"]
        if "password" in body or body.get("revokeTokens"):
            self.users[name]["revoked"] = True
        return self.users[name]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LabFiles:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    files = LabFiles.named("default")
    files.root.mkdir(parents=True)
    config = {"clusters": [{"name": "default", "cluster": CLUSTER}], "users": [], "contexts": []}
    files.kubeconfig.write_text(yaml.safe_dump(config))
    return files


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


def run(api: FakeApi, command: Any, args: list[str], stdin: str | None = None) -> Any:
    return CliRunner().invoke(command, args, input=stdin, obj=Connect(lambda _lab: api))


def test_add_list_remove(lab: LabFiles, api: FakeApi) -> None:
    result = run(
        api, user, ["add", "alice", "--group", "devs", "-g", "ops", "--password-stdin"], "alice-2026!\n"
    )
    assert result.exit_code == 0, result.output
    assert "user alice added to lab default (devs, ops)" in result.output
    assert api.calls[0] == (
        "POST",
        "/nestlab/v1/users",
        {"name": "alice", "groups": ["devs", "ops"], "password": "alice-2026!"},
        True,
    )
    listed = run(api, user, ["list"])
    assert listed.exit_code == 0
    assert listed.output.splitlines()[0].split() == ["NAME", "GROUPS", "CREATED"]
    assert listed.output.splitlines()[1].split() == ["alice", "devs,ops", "2026-12-05T23:00:00Z"]
    assert json.loads(run(api, user, ["list", "--json"]).output)[0]["name"] == "alice"
    removed = run(api, user, ["remove", "alice"])
    assert removed.exit_code == 0
    assert "user alice removed from lab default" in removed.output


def test_bad_input_gives_clear_errors(lab: LabFiles, api: FakeApi) -> None:
    assert run(api, user, ["add", "alice", "--password-stdin"], "alice-2026!").exit_code == 0
    duplicate = run(api, user, ["add", "alice", "--password-stdin"], "another-pass")
    assert duplicate.exit_code == 2
    assert "error: user alice exists" in duplicate.output
    empty = run(api, user, ["add", "bob", "--password-stdin"], "\n")
    assert empty.exit_code == 2
    assert "error: user bob: password: is empty" in empty.output
    weak = run(api, user, ["add", "bob", "--password-stdin"], "short")
    assert weak.exit_code == 2
    assert "password: must have at least 8 characters" in weak.output
    unknown = run(api, user, ["remove", "carol"])
    assert unknown.exit_code == 2
    assert "error: user carol does not exist" in unknown.output
    for result in (duplicate, empty, weak, unknown):
        assert "Traceback" not in result.output


def test_no_terminal_and_no_password_stdin(lab: LabFiles, api: FakeApi) -> None:
    result = run(api, user, ["add", "alice"])
    assert result.exit_code == 2
    assert "pipe it in with --password-stdin" in result.output
    assert api.calls == []


def test_prompt_asks_twice_on_a_terminal(
    lab: LabFiles, api: FakeApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "interactive", lambda: True)
    mismatch = run(api, user, ["add", "alice"], "alice-2026!\nalice-2027!\nalice-2026!\nalice-2026!\n")
    assert mismatch.exit_code == 0, mismatch.output
    assert "do not match" in mismatch.output
    assert api.passwords["alice"] == "alice-2026!"


def test_unknown_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, api: FakeApi) -> None:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path))
    result = run(api, user, ["list", "--lab", "nope"])
    assert result.exit_code == 2
    assert "lab 'nope' has no kubeconfig" in result.output


def test_login_writes_a_kubeconfig_without_secret_and_a_private_token_cache(
    lab: LabFiles, api: FakeApi
) -> None:
    api.passwords["alice"] = "alice-2026!"
    result = run(api, login, ["alice", "--password-stdin", "--ttl", "1h30m"], "alice-2026!\n")
    assert result.exit_code == 0, result.output
    assert api.calls[-1] == (
        "POST",
        "/nestlab/v1/login",
        {"username": "alice", "password": "alice-2026!", "expirationSeconds": 5400},
        False,
    )
    path = logins.kubeconfig_path(lab, "alice")
    assert f"export KUBECONFIG={path}" in result.output
    text = path.read_text()
    assert "token-of-alice" not in text
    assert "alice-2026!" not in text
    config = yaml.safe_load(text)
    assert config["clusters"][0]["cluster"] == CLUSTER
    exec_ = config["users"][0]["user"]["exec"]
    assert exec_["apiVersion"] == "client.authentication.k8s.io/v1beta1"
    assert Path(exec_["command"]).is_absolute()
    assert exec_["args"][-5:] == ["credential", "--lab", "default", "--user", "alice"]
    cache = logins.token_path(lab, "alice")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    printed = run(api, credential, ["--user", "alice"])
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "token-of-alice", "expirationTimestamp": LATER},
    }


def test_login_failures_do_not_say_which_part_was_wrong(lab: LabFiles, api: FakeApi) -> None:
    api.passwords["alice"] = "alice-2026!"
    wrong = run(api, login, ["alice", "--password-stdin"], "nope-nope-nope")
    unknown = run(api, login, ["zed", "--password-stdin"], "nope-nope-nope")
    assert wrong.exit_code == unknown.exit_code == 2
    assert "wrong user name or password" in wrong.output
    assert "wrong user name or password" in unknown.output
    assert not logins.token_path(lab, "alice").exists()
    bad_ttl = run(api, login, ["alice", "--password-stdin", "--ttl", "soon"], "x")
    assert bad_ttl.exit_code == 2
    assert "is not a duration" in bad_ttl.output


def test_credential_after_expiry_says_how_to_log_in(lab: LabFiles, api: FakeApi) -> None:
    api.passwords["alice"] = "alice-2026!"
    api.expiration = "2020-01-01T00:00:00Z"
    assert run(api, login, ["alice", "--password-stdin"], "alice-2026!").exit_code == 0
    expired = run(api, credential, ["--user", "alice"])
    assert expired.exit_code == 1
    typed = logins.program_name()
    assert (
        f"error: the token of alice expired at 2020-01-01T00:00:00Z: run {typed} login alice"
        in expired.output
    )
    never = run(api, credential, ["--user", "bob", "--lab", "other"])
    assert f"bob has not logged in to lab other: run {typed} login bob --lab other" in never.output


def test_the_login_hint_names_the_command_as_it_can_be_typed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    program = tmp_path / "clone" / ".venv" / "bin" / "nestlab"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    monkeypatch.setattr(logins, "nestlab_command", lambda: [str(program)])
    monkeypatch.chdir(tmp_path / "clone")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert logins.login_hint("alice", "e2e") == ".venv/bin/nestlab login alice --lab e2e"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert logins.program_name() == str(program)  # not below the current directory: its full path
    monkeypatch.setenv("PATH", f"{program.parent}:/usr/bin:/bin")
    assert logins.login_hint("alice", "default") == "nestlab login alice"  # PATH finds this one


def test_remove_forgets_the_login(lab: LabFiles, api: FakeApi) -> None:
    assert run(api, user, ["add", "alice", "--password-stdin"], "alice-2026!").exit_code == 0
    assert run(api, login, ["alice", "--password-stdin"], "alice-2026!").exit_code == 0
    assert run(api, user, ["remove", "alice"]).exit_code == 0
    assert not logins.token_path(lab, "alice").exists()
    assert not logins.kubeconfig_path(lab, "alice").exists()


def test_pure_helpers() -> None:
    assert logins.parse_duration("10h") == 36000
    assert (
        logins.parse_duration("600") == logins.parse_duration("600s") == logins.parse_duration("10m") == 600
    )
    assert logins.requested_api_version('{"apiVersion": "client.authentication.k8s.io/v1"}').endswith("/v1")
    assert logins.requested_api_version("garbage") == logins.EXEC_API
    now = datetime.datetime(2026, 12, 5, tzinfo=datetime.UTC)
    cache = {"token": "t", "expirationTimestamp": "2026-12-05T00:00:00Z"}
    with pytest.raises(logins.LoginExpiredError, match="expired at 2026-12-05T00:00:00Z"):
        logins.exec_credential(cache, "alice", "default", now)
    with pytest.raises(logins.LoginExpiredError, match="damaged"):
        logins.exec_credential({"token": "t"}, "alice", "default", now)
    with pytest.raises(Exception, match="not a lab user name"):
        logins.token_path(LabFiles(Path("/x")), "../root")


def test_passwd_and_revoke(lab: LabFiles, api: FakeApi) -> None:
    assert run(api, user, ["add", "alice", "--password-stdin"], "alice-2026!").exit_code == 0
    changed = run(api, user, ["passwd", "alice", "--password-stdin"], "alice-2027!\n")
    assert changed.exit_code == 0, changed.output
    assert "earlier tokens are revoked" in changed.output
    assert api.passwords["alice"] == "alice-2027!"
    weak = run(api, user, ["passwd", "alice", "--password-stdin"], "short")
    assert weak.exit_code == 2
    assert "user alice: password: must have at least 8 characters" in weak.output
    revoked = run(api, user, ["revoke", "alice", "--lab", "default"])
    assert revoked.exit_code == 0, revoked.output
    assert api.calls[-1] == ("PATCH", "/nestlab/v1/users/alice", {"revokeTokens": True}, True)
    unknown = run(api, user, ["revoke", "zed"])
    assert unknown.exit_code == 2
    assert "user zed does not exist" in unknown.output


def test_set_replaces_the_groups_and_twice_changes_nothing(lab: LabFiles, api: FakeApi) -> None:
    assert run(api, user, ["add", "alice", "-g", "devs", "--password-stdin"], "alice-2026!").exit_code == 0
    changed = run(api, user, ["set", "alice", "--group", "ops", "-g", "auditors", "-g", "ops"])
    assert changed.exit_code == 0, changed.output
    assert changed.output == "groups of user alice: ops, auditors\n"
    assert api.calls[-1] == ("PATCH", "/nestlab/v1/users/alice", {"groups": ["ops", "auditors"]}, True)
    assert api.users["alice"]["groups"] == ["ops", "auditors"]
    assert "revoked" not in api.users["alice"]  # a group change is no revocation
    calls = len(api.calls)
    again = run(api, user, ["set", "alice", "-g", "auditors", "-g", "ops"])
    assert again.exit_code == 0, again.output
    assert again.output == "user alice unchanged (ops, auditors)\n"
    assert [c[0] for c in api.calls[calls:]] == ["GET"]  # read, nothing written
    cleared = run(api, user, ["set", "alice", "--no-groups"])
    assert cleared.exit_code == 0, cleared.output
    assert api.users["alice"]["groups"] == []
    assert "groups of user alice: none" in cleared.output


def test_set_refuses_unknown_users_and_bad_input(lab: LabFiles, api: FakeApi) -> None:
    assert run(api, user, ["add", "alice", "--password-stdin"], "alice-2026!").exit_code == 0
    unknown = run(api, user, ["set", "carol", "--group", "devs"])
    assert unknown.exit_code == 2
    assert "error: user carol does not exist (`nestlab user list` shows the users)" in unknown.output
    for args in (["set", "alice"], ["set", "alice", "-g", "devs", "--no-groups"]):
        neither = run(api, user, args)
        assert neither.exit_code == 2
        assert "give the groups with --group G" in neither.output
    bad = run(api, user, ["set", "alice", "-g", "a,b"])
    assert bad.exit_code == 2
    assert "error: user alice: groups[0]: must not be empty or contain a comma" in bad.output
    for result in (unknown, bad):
        assert "Traceback" not in result.output


def test_cached_token_for_other_callers(lab: LabFiles, api: FakeApi) -> None:
    api.passwords["alice"] = "alice-2026!"
    assert run(api, login, ["alice", "--password-stdin"], "alice-2026!").exit_code == 0
    now = datetime.datetime.now(datetime.UTC)
    assert logins.cached_token(lab, "default", "alice", now) == "token-of-alice"
    logins.token_path(lab, "alice").write_text("{damaged")
    with pytest.raises(logins.LoginExpiredError, match="damaged"):
        logins.cached_token(lab, "default", "alice", now)
    logins.token_path(lab, "alice").chmod(0)
    if os.access(logins.token_path(lab, "alice"), os.R_OK):
        return  # root reads any file: the unreadable case cannot happen to it
    with pytest.raises(logins.LoginExpiredError, match="cannot read the token cache"):
        logins.cached_token(lab, "default", "alice", now)
