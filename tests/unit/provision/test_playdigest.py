"""Which hosts a provisioning run skips: plays, role closures, per-host digests and the decision."""

from __future__ import annotations

from typing import Any

from nestlab.provision import playdigest as pd

PLAYBOOK = """
- name: every node
  hosts: all
  roles: [common]
- name: depot
  hosts: depot
  roles:
    - role: depot
- name: control plane
  hosts: control_plane
  roles:
    - role: control_plane
"""

INVENTORY: dict[str, Any] = {
    "all": {
        "vars": {"x": 1},
        "children": {
            "depot": {"hosts": {"depot": {"ansible_host": "10.0.0.2"}}},
            "control_plane": {"hosts": {"cp-1": {"ansible_host": "10.0.0.3"}}},
        },
    }
}

REFS: dict[str, set[str] | None] = {
    "common": set(),
    "depot": set(),
    "control_plane": {"nestlab_venv"},
    "nestlab_venv": set(),
}


def digest(host: str, **overrides: Any) -> str:
    inputs: dict[str, Any] = {
        "playbook": PLAYBOOK,
        "roles": {"common": {"tasks/main.yml": "a"}},
        "inventory": INVENTORY,
        "extravars": {"v": "1"},
        "files": {"pki/ca.crt": "c"},
    }
    inputs.update(overrides)
    return pd.host_digest(host, **inputs)


def test_plays_are_read_from_the_playbook() -> None:
    assert pd.parse_plays(PLAYBOOK) == [
        pd.Play("all", ("common",)),
        pd.Play("depot", ("depot",)),
        pd.Play("control_plane", ("control_plane",)),
    ]


def test_a_play_with_its_own_tasks_or_a_templated_role_makes_plays_unknown() -> None:
    assert pd.parse_plays("- hosts: all\n  tasks: [{debug: {msg: hi}}]\n") is None
    assert pd.parse_plays("- hosts: all\n  roles: ['{{ which }}']\n") is None
    assert pd.parse_plays("- import_playbook: other.yml\n") is None
    assert pd.parse_plays("not: [a, list") is None


def test_imported_roles_and_meta_dependencies_are_found() -> None:
    tasks = ["- name: venv\n  ansible.builtin.import_role:\n    name: nestlab_venv\n"]
    assert pd.referenced_roles(tasks, "dependencies:\n  - role: common\n") == {"nestlab_venv", "common"}
    assert pd.referenced_roles(["- include_role:\n    name: '{{ r }}'\n"], None) is None


def test_host_groups_include_all_and_nested_groups() -> None:
    groups = pd.host_groups(INVENTORY)
    assert groups == {"depot": {"all", "depot"}, "cp-1": {"all", "control_plane"}}


def test_a_host_runs_the_roles_of_its_plays_and_what_they_import() -> None:
    plays = pd.parse_plays(PLAYBOOK)
    assert pd.roles_for_host("cp-1", {"all", "control_plane"}, plays, REFS) == {
        "common",
        "control_plane",
        "nestlab_venv",
    }
    assert pd.roles_for_host("depot", {"all", "depot"}, plays, REFS) == {"common", "depot"}


def test_an_unknown_role_or_playbook_means_every_role_counts() -> None:
    plays = pd.parse_plays(PLAYBOOK)
    assert pd.roles_for_host("cp-1", {"all", "control_plane"}, plays, {"common": set()}) is None
    assert pd.roles_for_host("cp-1", {"all"}, None, REFS) is None


def test_the_digest_is_stable_and_changes_with_every_input() -> None:
    base = digest("cp-1")
    assert digest("cp-1") == base
    changed = [
        digest("cp-2"),
        digest("cp-1", playbook=PLAYBOOK + "\n# edited\n"),
        digest("cp-1", roles={"common": {"tasks/main.yml": "b"}}),
        digest("cp-1", inventory={"all": {"vars": {"x": 2}}}),
        digest("cp-1", extravars={"v": "2"}),
        digest("cp-1", files={"pki/ca.crt": "d"}),
    ]
    assert base not in changed
    assert len(set(changed)) == len(changed)


def test_the_digest_does_not_depend_on_mapping_order() -> None:
    one = digest("h", files={"a": "1", "b": "2"}, extravars={"p": "1", "q": "2"})
    two = digest("h", files={"b": "2", "a": "1"}, extravars={"q": "2", "p": "1"})
    assert one == two


def test_only_a_host_whose_record_and_node_copy_match_is_skipped() -> None:
    computed = {"a": "1", "b": "2", "c": "3", "d": "4"}
    recorded = {"a": "1", "b": "old", "c": "3"}
    on_node = {"a": "1", "b": "old", "c": None, "d": None}
    decision = pd.decide(computed, recorded, on_node)
    assert decision.reasons == {
        "a": pd.Reason.UNCHANGED,
        "b": pd.Reason.INPUTS,
        "c": pd.Reason.NODE,
        "d": pd.Reason.NEVER,
    }
    assert decision.stale == ["b", "c", "d"]
    assert decision.skipped == ["a"]
    assert "c: node rebuilt" in decision.summary()
    assert "skipped (unchanged): a" in decision.summary()


def test_a_full_run_provisions_every_host() -> None:
    decision = pd.decide({"a": "1"}, {"a": "1"}, {"a": "1"}, force=True)
    assert decision.stale == ["a"]


def test_nothing_stale_says_the_playbook_is_skipped() -> None:
    decision = pd.decide({"a": "1", "b": "2"}, {"a": "1", "b": "2"}, {"a": "1", "b": "2"})
    assert decision.stale == []
    assert decision.summary() == "every node (2) unchanged since its last provisioning: playbook skipped"
