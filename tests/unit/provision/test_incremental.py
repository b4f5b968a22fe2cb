"""Provisioning only the stale nodes: the real playbook and roles are digested, the nodes' copies
live in a fake, and the playbook runner records the limit it was given."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any

import pytest

from nestlab.paths import LabFiles
from nestlab.provision import incremental
from nestlab.provision.archive import pack_tree
from nestlab.provision.events import ProvisionError, Tally
from nestlab.provision.playdigest import Reason
from nestlab.provision.remote import RemoteError
from nestlab.spec import make_plan, parse_spec
from nestlab.spec.plan import Plan

SPEC = "apiVersion: nestlab.dev/v1alpha1\nkind: Lab\nmetadata:\n  name: digest\n"


class FakeNodes:
    """Each node's small files; a node in ``down`` does not answer."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], str] = {}
        self.down: set[str] = set()

    def read(self, node: str, path: str) -> str | None:
        if node in self.down:
            raise RemoteError(f"{node}: unreachable")
        return self.files.get((node, path))

    def write(self, node: str, path: str, content: str, mode: str = "0644") -> bool:
        if node in self.down:
            raise RemoteError(f"{node}: unreachable")
        changed = self.files.get((node, path)) != content
        self.files[(node, path)] = content
        return changed


class Runner:
    """Stands in for run_playbook: records each limit; fails when told to."""

    def __init__(self) -> None:
        self.limits: list[str | None] = []
        self.fail = False

    def __call__(self, plan: Plan, files: LabFiles, progress: Any, **kwargs: Any) -> Tally:
        self.limits.append(kwargs["limit"])
        if self.fail:
            raise ProvisionError([], "ansible.log")
        return Tally()


@pytest.fixture
def lab(tmp_path: Path) -> tuple[Plan, LabFiles]:
    files = LabFiles(tmp_path / "lab")
    (files.root / "pki").mkdir(parents=True)
    (files.root / "pki" / "ca.crt").write_text("CA 1\n")
    (files.root / "logs").mkdir()
    return make_plan(parse_spec(SPEC, name="digest")), files


def provision(lab: tuple[Plan, LabFiles], nodes: FakeNodes, runner: Runner, **kwargs: Any) -> list[str]:
    plan, files = lab
    lines: list[str] = []
    _, decision = incremental.provision_site(
        plan, files, lines.append, {"v": "1"}, remote=nodes, runner=runner, **kwargs
    )
    return decision.stale


def test_a_second_run_of_an_unchanged_lab_runs_no_playbook(lab: tuple[Plan, LabFiles]) -> None:
    nodes, runner = FakeNodes(), Runner()
    everyone = [node.name for node in lab[0].nodes]
    assert provision(lab, nodes, runner) == everyone
    assert provision(lab, nodes, runner) == []
    assert runner.limits == [None]
    assert {node for node, _ in nodes.files} == set(everyone)


def test_a_rebuilt_node_alone_is_provisioned_again(lab: tuple[Plan, LabFiles]) -> None:
    nodes, runner = FakeNodes(), Runner()
    provision(lab, nodes, runner)
    del nodes.files[("esx-02", incremental.NODE_DIGEST)]
    assert provision(lab, nodes, runner) == ["esx-02"]
    assert runner.limits == [None, "esx-02"]
    assert provision(lab, nodes, runner) == []


def test_a_node_that_does_not_answer_is_provisioned_again(lab: tuple[Plan, LabFiles]) -> None:
    nodes, runner = FakeNodes(), Runner()
    provision(lab, nodes, runner)
    nodes.down.add("lb-2")
    assert provision(lab, nodes, runner) == ["lb-2"]


def test_changed_lab_files_or_variables_provision_every_node(lab: tuple[Plan, LabFiles]) -> None:
    nodes, runner = FakeNodes(), Runner()
    plan, files = lab
    provision(lab, nodes, runner)
    (files.root / "pki" / "ca.crt").write_text("CA 2\n")
    assert len(provision(lab, nodes, runner)) == len(plan.nodes)
    (files.logs / "up.log").write_text("logs are not inputs\n")
    files.kubeconfig.write_text("written after the playbook: not an input\n")
    assert provision(lab, nodes, runner) == []
    lines: list[str] = []
    _, decision = incremental.provision_site(
        plan, files, lines.append, {"v": "2"}, remote=nodes, runner=runner
    )
    assert set(decision.reasons.values()) == {Reason.INPUTS}
    assert lines == [f"provisioning: {', '.join(decision.stale)}: {Reason.INPUTS.value}"]


def test_a_failed_run_leaves_its_nodes_stale_even_if_the_inputs_go_back(
    lab: tuple[Plan, LabFiles],
) -> None:
    nodes, runner = FakeNodes(), Runner()
    plan, files = lab
    provision(lab, nodes, runner)
    (files.root / "pki" / "ca.crt").write_text("CA 2\n")
    runner.fail = True
    with pytest.raises(ProvisionError):
        provision(lab, nodes, runner)
    runner.fail = False
    (files.root / "pki" / "ca.crt").write_text("CA 1\n")  # back to what the nodes recorded
    assert len(provision(lab, nodes, runner)) == len(plan.nodes)


def test_full_provisions_every_node(lab: tuple[Plan, LabFiles]) -> None:
    nodes, runner = FakeNodes(), Runner()
    provision(lab, nodes, runner)
    assert len(provision(lab, nodes, runner, full=True)) == len(lab[0].nodes)
    assert runner.limits == [None, None]


def test_digests_differ_per_role_and_follow_the_roles_a_host_runs(lab: tuple[Plan, LabFiles]) -> None:
    plan, files = lab
    digests = incremental.compute_digests(plan, files, {"v": "1"})
    assert len(set(digests.values())) == len(plan.nodes)
    assert incremental.compute_digests(plan, files, {"v": "1"}) == digests


def test_an_archive_depends_only_on_names_and_bytes(tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "pool" / "main").mkdir(parents=True)
    (source / "pool" / "main" / "k.deb").write_bytes(b"b" * 3000)
    (source / "Release").write_bytes(b"a")
    archive = tmp_path / "repo.tar"
    assert pack_tree(source, archive) is True
    first = archive.read_bytes()
    (source / "Release").touch()  # a new time, the same bytes
    assert pack_tree(source, archive) is False
    assert archive.read_bytes() == first
    (source / "Release").write_bytes(b"A")
    assert pack_tree(source, archive) is True
    with tarfile.open(archive) as tar:
        assert [(m.name, m.isdir(), m.mode, m.mtime, m.uid) for m in tar.getmembers()] == [
            ("Release", False, 0o644, 0, 0),
            ("pool", True, 0o755, 0, 0),
            ("pool/main", True, 0o755, 0, 0),
            ("pool/main/k.deb", False, 0o644, 0, 0),
        ]


def test_every_lab_file_the_roles_read_is_an_input() -> None:
    roles = Path(__file__).resolve().parents[3] / "roles"
    pattern = re.compile(r"nestlab_state_dir(?: \}\}|\s*\+\s*')/([A-Za-z0-9_.-]+)")
    read = {m for path in roles.rglob("*.yml") for m in pattern.findall(path.read_text(encoding="utf-8"))}
    assert read, "the pattern no longer finds the roles' references to the lab directory"
    assert read <= set(incremental.INPUTS)
