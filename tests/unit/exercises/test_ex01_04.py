"""Checks and resets of exercises 1-4 against a fake lab: missing before the steps, passed after."""

from __future__ import annotations

from nestlab.exercises import ex01_tour, ex02_pod_is_a_vm, ex03_namespaces, ex04_image_service
from tests.unit.exercises.fakelab import FakeLab, running_pod

NS = "/api/v1/namespaces"
SERVER = "https://198.18.0.5:6443"


def tour_lab(data: dict[str, str]) -> FakeLab:
    lab = FakeLab(kubectl_out=lambda args: SERVER if args[:2] == ("config", "view") else "")
    lab.objects[f"{NS}/ex01"] = {"metadata": {"name": "ex01"}}
    lab.objects[f"{NS}/ex01/configmaps/tour"] = {"data": data}
    lab.lists["/api/v1/nodes"] = [{}, {}, {}]
    return lab


def test_ex01_before_and_after() -> None:
    assert ex01_tour.check(FakeLab()) == [
        "namespace ex01 does not exist (step 7: kubectl create namespace ex01)"
    ]
    assert ex01_tour.check(tour_lab({"vip": SERVER, "hosts": "3", "scheduler-leader": "cp-2"})) == []


def test_ex01_names_each_wrong_value() -> None:
    missing = ex01_tour.check(tour_lab({"vip": "https://10.0.0.1:6443", "hosts": "2"}))
    assert len(missing) == 3
    assert "the control plane answers at https://198.18.0.5:6443" in missing[0]
    assert "the lab has 3 Nodes" in missing[1]
    assert "scheduler-leader is None" in missing[2]


def test_ex01_reset_deletes_its_namespace_and_waits() -> None:
    lab = FakeLab()
    ex01_tour.reset(lab)
    assert lab.ran == [
        ("kubectl", "delete", "namespace", "ex01", "--ignore-not-found", "--wait=false"),
        ("kubectl", "-n", "ex01", "delete", "pods", "--all", "--force", "--grace-period=0"),
        ("kubectl", "wait", "--for=delete", "namespace/ex01", "--timeout=300s"),
    ]


def vm_lab(*, restarts: int, noted: str | None, pids: str) -> FakeLab:
    annotations = {} if noted is None else {"lab.nestlab.dev/qemu-pid": noted}
    lab = FakeLab(
        ssh_out=lambda node, command: pids if node == "esx-01" and "uid-web/vm/vmlinux" in command else ""
    )
    lab.objects[f"{NS}/ex02/pods/web"] = running_pod(
        "ex02", "web", restarts=restarts, annotations=annotations
    )
    return lab


def test_ex02_before_and_after() -> None:
    assert ex02_pod_is_a_vm.check(FakeLab()) == ["there is no pod web in namespace ex02 (steps 1-2)"]
    assert ex02_pod_is_a_vm.check(vm_lab(restarts=1, noted="4242", pids="4242\n")) == []


def test_ex02_wants_the_restart_and_the_current_pid() -> None:
    missing = ex02_pod_is_a_vm.check(vm_lab(restarts=0, noted="17", pids="4242\n"))
    assert missing[0] == "pod ex02/web has not been restarted: kill its VM (Break it)"
    assert "says 17, but the pod's QEMU process on esx-01 is 4242" in missing[1]
    assert ex02_pod_is_a_vm.check(vm_lab(restarts=1, noted=None, pids="1")) == [
        "pod ex02/web has no annotation lab.nestlab.dev/qemu-pid (step 8)"
    ]


def test_ex02_a_pod_not_running_yet_says_so() -> None:
    lab = vm_lab(restarts=0, noted=None, pids="")
    lab.objects[f"{NS}/ex02/pods/web"]["status"] = {"phase": "Pending"}
    assert ex02_pod_is_a_vm.check(lab) == [
        "pod ex02/web is not running and ready yet (phase Pending; steps 1-2)"
    ]


def tenancy_lab(
    *, users: str = "NAME GROUPS\nex03-dev <none> x\n", hard: dict[str, str] | None = None
) -> FakeLab:
    lab = FakeLab(nestlab_out=lambda args: users if args == ("user", "list") else "")
    lab.objects[f"{NS}/ex03"] = {}
    lab.objects[f"{NS}/ex03/resourcequotas/nestlab-limits"] = {
        "spec": {"hard": hard or {"limits.cpu": "1", "limits.memory": "512Mi", "pods": "2"}}
    }
    lab.objects["/apis/rbac.authorization.k8s.io/v1/namespaces/ex03/rolebindings/nestlab-edit"] = {
        "subjects": [{"kind": "User", "name": "ex03-dev"}]
    }
    lab.objects[f"{NS}/ex03/pods/web"] = running_pod("ex03", "web")
    return lab


def test_ex03_before_and_after() -> None:
    assert ex03_namespaces.check(FakeLab()) == [
        "there is no lab user ex03-dev (step 1)",
        "namespace ex03 does not exist (step 2)",
    ]
    assert ex03_namespaces.check(tenancy_lab()) == []


def test_ex03_checks_the_quota_values() -> None:
    missing = ex03_namespaces.check(
        tenancy_lab(hard={"limits.cpu": "2", "limits.memory": "512Mi", "pods": "2"})
    )
    assert missing == ["namespace ex03's quota limits.cpu is '2', not 1 (step 2)"]


def test_ex03_reset_removes_the_user_only_when_there() -> None:
    lab = tenancy_lab()
    ex03_namespaces.reset(lab)
    assert ("nestlab", "user", "remove", "ex03-dev") in lab.ran
    gone = tenancy_lab(users="NAME GROUPS\n")
    ex03_namespaces.reset(gone)
    assert ("nestlab", "user", "remove", "ex03-dev") not in gone.ran


def image_lab(*, cached: bool, image: str = ex04_image_service.IMAGE) -> FakeLab:
    wanted = "/var/lib/nestlab-agent/images/images/abc123/rootfs.erofs"
    lab = FakeLab(ssh_out=lambda node, command: "cached\n" if cached and wanted in command else "")
    lab.objects[f"{NS}/ex04/pods/hello"] = running_pod("ex04", "hello", node="esx-02", image=image)
    return lab


def test_ex04_before_and_after() -> None:
    assert ex04_image_service.check(FakeLab()) == ["there is no pod hello in namespace ex04 (steps 1-4)"]
    assert ex04_image_service.check(image_lab(cached=True)) == []


def test_ex04_wants_the_cached_disk_the_pushed_image_and_the_other_namespace_gone() -> None:
    assert ex04_image_service.check(image_lab(cached=False)) == [
        "host esx-02 has no cached disk of the image (/var/lib/nestlab-agent/images/images/abc123/rootfs.erofs)"
    ]
    assert "not depot:5000/ex04/hello:1" in ex04_image_service.check(image_lab(cached=True, image="x"))[0]
    lab = image_lab(cached=True)
    lab.objects[f"{NS}/ex04-other"] = {}
    assert ex04_image_service.check(lab) == [
        "namespace ex04-other still exists (Break it: delete it to restore)"
    ]


def test_ex04_accepts_the_short_name_the_push_prints() -> None:
    assert ex04_image_service.check(image_lab(cached=True, image="ex04/hello:1")) == []
    assert ex04_image_service.check(image_lab(cached=True, image="ex04/other:1")) == [
        "pod ex04/hello runs 'ex04/other:1', not depot:5000/ex04/hello:1 (step 4)"
    ]


def test_ex04_reset_deletes_both_namespaces() -> None:
    lab = FakeLab()
    ex04_image_service.reset(lab)
    assert lab.ran[0][:4] == ("kubectl", "delete", "namespace", "ex04")
    assert "ex04-other" in lab.ran[0]
