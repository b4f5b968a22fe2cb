"""Exercise 6's check and reset against a fake lab: objects from a dict, the client's fetch scripted."""

from __future__ import annotations

from typing import Any

from nestlab.exercises.ex06_services import EXERCISE, check, reset

Obj = dict[str, Any]
NS = "/api/v1/namespaces/ex06"
SERVICES = f"{NS}/services"


class FakeLab:
    """API paths answer from a dict; ``kubectl exec`` answers ``answer``; commands are recorded."""

    name = "fake"

    def __init__(self, objects: dict[str, Obj], answer: str = "web-5d8c-x2x7q\n") -> None:
        self.objects = objects
        self.answer = answer
        self.commands: list[tuple[str, ...]] = []

    def get(self, path: str) -> Obj | None:
        return self.objects.get(path)

    def items(self, path: str) -> list[Obj]:
        return []

    def kubectl(self, *args: str, check: bool = True) -> str:
        self.commands.append(args)
        return self.answer if "exec" in args else ""

    def nestlab(self, *args: str, check: bool = True) -> str:
        raise AssertionError("exercise 6's check runs no nestlab command")

    def ssh(self, node: str, command: str, check: bool = True) -> str:
        raise AssertionError("exercise 6's check logs in nowhere")

    def node_running(self, node: str) -> bool:
        return True


def running_pod(name: str) -> Obj:
    return {
        "metadata": {"name": name},
        "status": {"phase": "Running", "containerStatuses": [{"name": "c", "ready": True}]},
    }


def done() -> dict[str, Obj]:
    """The lab after the steps (and the Break it undone)."""
    addresses = [{"ip": f"198.19.10{i}.2"} for i in range(3)]
    return {
        NS: {"metadata": {"name": "ex06"}},
        "/apis/apps/v1/namespaces/ex06/deployments/web": {"metadata": {"name": "web"}},
        f"{SERVICES}/web": {
            "spec": {"type": "ClusterIP", "selector": {"app": "web"}, "clusterIP": "198.18.32.7"}
        },
        f"{NS}/endpoints/web": {"subsets": [{"addresses": addresses, "ports": [{"port": 80}]}]},
        f"{NS}/pods/client": running_pod("client"),
        f"{SERVICES}/web-lb": {
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.18.8.1"}]}},
        },
    }


def test_the_finished_steps_pass_and_the_client_fetched_through_the_service() -> None:
    lab = FakeLab(done())
    assert check(lab) == []
    (fetch,) = [c for c in lab.commands if "exec" in c]
    assert fetch[:4] == ("-n", "ex06", "exec", "client")
    assert "http://web/host" in fetch[-1]


def test_an_empty_lab_names_step_one() -> None:
    assert check(FakeLab({})) == ["namespace ex06 does not exist yet (step 1)"]


def test_only_the_namespace_names_every_missing_piece() -> None:
    missing = check(FakeLab({NS: {}}))
    assert len(missing) == 4
    assert "deployment web" in missing[0]
    assert "no service web in ex06" in missing[1]
    assert "no pod client" in missing[2]
    assert "no service web-lb" in missing[3]


def test_a_selector_typo_is_named_and_the_client_is_not_asked() -> None:
    objects = done()
    objects[f"{SERVICES}/web"]["spec"]["selector"] = {"app": "wbe"}
    lab = FakeLab(objects)
    (missing,) = check(lab)
    assert "selects {'app': 'wbe'}, not app=web" in missing
    assert not any("exec" in c for c in lab.commands)


def test_fewer_endpoints_than_replicas() -> None:
    objects = done()
    objects[f"{NS}/endpoints/web"] = {"subsets": [{"addresses": [{"ip": "198.19.100.2"}]}]}
    (missing,) = check(FakeLab(objects))
    assert "1 ready endpoints, not 3" in missing


def test_a_client_without_an_answer() -> None:
    (missing,) = check(FakeLab(done(), answer="wget: bad address 'web'\nFAILED\n"))
    assert "gets no answer from http://web/host (FAILED)" in missing


def test_a_load_balancer_still_pending() -> None:
    objects = done()
    objects[f"{SERVICES}/web-lb"]["status"] = {"loadBalancer": {}}
    (missing,) = check(FakeLab(objects))
    assert "web-lb in ex06 has no external address yet" in missing


def test_a_client_not_ready_yet() -> None:
    objects = done()
    objects[f"{NS}/pods/client"]["status"] = {"phase": "Pending"}
    lab = FakeLab(objects)
    (missing,) = check(lab)
    assert "client is not running" in missing
    assert not any("exec" in c for c in lab.commands)


def test_reset_terminates_the_namespace_force_deletes_its_pods_then_waits() -> None:
    lab = FakeLab({})
    reset(lab)
    terminate, pods, wait = (c[0:] for c in lab.commands)
    assert terminate[:3] == ("delete", "namespace", "ex06")
    assert "--wait=false" in terminate
    assert pods[:5] == ("-n", "ex06", "delete", "pods", "--all")
    assert "--force" in pods
    assert "--grace-period=0" in pods
    assert wait[:3] == ("wait", "--for=delete", "namespace/ex06")


def test_the_exercise_names_its_file() -> None:
    assert (EXERCISE.number, EXERCISE.slug) == (6, "services")
