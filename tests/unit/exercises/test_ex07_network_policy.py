"""Exercise 7's check and reset against a fake lab: objects from a dict, each client's fetch scripted."""

from __future__ import annotations

from typing import Any

import pytest

from nestlab.exercises.ex07_network_policy import EXERCISE, allows_frontend, check, is_default_deny, reset

Obj = dict[str, Any]
NS = "/api/v1/namespaces/ex07"
POLICIES = "/apis/networking.k8s.io/v1/namespaces/ex07/networkpolicies"


class FakeLab:
    """API paths answer from a dict; ``kubectl exec POD`` answers ``answers[POD]``."""

    name = "fake"

    def __init__(self, objects: dict[str, Any], answers: dict[str, str] | None = None) -> None:
        self.objects = objects
        self.answers = (
            answers if answers is not None else {"frontend": "web-7f9-abcde\n", "other": "blocked\n"}
        )
        self.commands: list[tuple[str, ...]] = []

    def get(self, path: str) -> Obj | None:
        found = self.objects.get(path)
        return found if isinstance(found, dict) else None

    def items(self, path: str) -> list[Obj]:
        found = self.objects.get(path)
        return list(found) if isinstance(found, list) else []

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.commands.append(args)
        return self.answers[args[3]] if "exec" in args else ""

    def nestlab(self, *args: str, check: bool = True) -> str:
        raise AssertionError("exercise 7's check runs no nestlab command")

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        raise AssertionError("exercise 7's check logs in nowhere")

    def node_running(self, node: str) -> bool:
        return True


def client(app: str) -> Obj:
    return {
        "metadata": {"labels": {"run": app, "app": app}},
        "status": {"phase": "Running", "containerStatuses": [{"ready": True}]},
    }


DENY: Obj = {"metadata": {"name": "default-deny"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}}
ALLOW: Obj = {
    "metadata": {"name": "allow-frontend"},
    "spec": {
        "podSelector": {"matchLabels": {"app": "web"}},
        "policyTypes": ["Ingress"],
        "ingress": [
            {"from": [{"podSelector": {"matchLabels": {"app": "frontend"}}}], "ports": [{"port": 80}]}
        ],
    },
}


def done() -> dict[str, Any]:
    return {
        NS: {"metadata": {"name": "ex07"}},
        "/apis/apps/v1/namespaces/ex07/deployments/web": {"metadata": {"name": "web"}},
        f"{NS}/services/web": {"metadata": {"name": "web"}},
        f"{NS}/pods/frontend": client("frontend"),
        f"{NS}/pods/other": client("other"),
        POLICIES: [ALLOW, DENY],
    }


def test_the_finished_steps_pass_after_fetching_from_both_clients() -> None:
    lab = FakeLab(done())
    assert check(lab) == []
    assert [c[3] for c in lab.commands if "exec" in c] == ["frontend", "other"]


def test_an_empty_lab_names_step_one() -> None:
    assert check(FakeLab({})) == ["namespace ex07 does not exist yet (step 1)"]


def test_without_policies_both_are_named_and_nothing_is_fetched() -> None:
    objects = done()
    objects[POLICIES] = []
    lab = FakeLab(objects)
    missing = check(lab)
    assert len(missing) == 2
    assert "no default-deny NetworkPolicy" in missing[0]
    assert "app=frontend" in missing[1]
    assert lab.commands == []


def test_a_relabelled_other_pod_is_named_with_the_command_to_fix_it() -> None:
    objects = done()
    objects[f"{NS}/pods/other"]["metadata"]["labels"]["app"] = "frontend"
    (missing,) = check(FakeLab(objects))
    assert "pod other in ex07 is labelled app=frontend, not app=other" in missing
    assert "kubectl -n ex07 label pod other app=other --overwrite" in missing


def test_a_firewall_that_lets_other_in_fails() -> None:
    (missing,) = check(FakeLab(done(), {"frontend": "web-1\n", "other": "web-2\n"}))
    assert missing == "pod other in ex07 still reaches http://web/host (it got: web-2)"


def test_a_firewall_that_keeps_frontend_out_fails() -> None:
    (missing,) = check(FakeLab(done(), {"frontend": "Terminated\nblocked\n", "other": "blocked\n"}))
    assert missing == "pod frontend in ex07 cannot reach http://web/host (it got: blocked)"


@pytest.mark.parametrize(
    "spec",
    [
        {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]},
        {"podSelector": {}, "policyTypes": ["Egress"]},
        {"podSelector": {}, "ingress": [{}]},
    ],
)
def test_what_is_not_a_default_deny(spec: Obj) -> None:
    assert not is_default_deny({"spec": spec})


def test_a_default_deny_without_policy_types_isolates_ingress() -> None:
    assert is_default_deny({"spec": {"podSelector": {}}})


@pytest.mark.parametrize(
    "peer",
    [
        {"podSelector": {"matchLabels": {"app": "other"}}},
        {"podSelector": {"matchLabels": {"app": "frontend"}}, "namespaceSelector": {}},
        {"ipBlock": {"cidr": "0.0.0.0/0"}},
    ],
)
def test_what_does_not_allow_the_frontend(peer: Obj) -> None:
    spec = {"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [peer]}]}
    assert not allows_frontend({"spec": spec})


def test_reset_terminates_the_namespace_force_deletes_its_pods_then_waits() -> None:
    lab = FakeLab({})
    reset(lab)
    terminate, pods, wait = (c[0:] for c in lab.commands)
    assert terminate[:3] == ("delete", "namespace", "ex07")
    assert "--wait=false" in terminate
    assert pods[:5] == ("-n", "ex07", "delete", "pods", "--all")
    assert "--force" in pods
    assert "--grace-period=0" in pods
    assert wait[:3] == ("wait", "--for=delete", "namespace/ex07")


def test_the_exercise_names_its_file() -> None:
    assert (EXERCISE.number, EXERCISE.slug) == (7, "network-policy")
