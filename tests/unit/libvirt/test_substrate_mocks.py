"""The libvirt lab's record against the Pulumi program, under Pulumi's mocks.

`nestlab status/node/ssh/down` find a libvirt lab's domains through the record `up` writes; these
tests run the real program (__main__.py) with exactly the stack config `up` and `down` give the
Automation API for that record, and check the program declares those very domains, on those
hypervisors, at those addresses: a rename on either side fails here instead of on a real lab.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.substrate.libvirt import automation
from nestlab.substrate.libvirt.settings import public_key_path
from nestlab.substrate.libvirt.substrate import LibvirtSubstrate
from tests.unit.libvirt.harness import ROOT, TEST_KEY, run_program

DOMAIN = "libvirt:index/domain:Domain"
PROVIDER = "pulumi:providers:libvirt"
CLOUD_INIT = "libvirt:index/cloudInitDisk:CloudInitDisk"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NESTLAB_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.mark.parametrize(("spec", "stack"), [("default.lab.yaml", "dev"), ("multi.lab.yaml", "multi")])
def test_the_program_declares_exactly_the_recorded_domains_on_the_recorded_hypervisors(
    home: Path, spec: str, stack: str
) -> None:
    request = automation.LabRequest(spec=ROOT / "stacks" / spec, image="/images/node.qcow2")
    substrate = LibvirtSubstrate.prepare(request)
    public = public_key_path(substrate.files.root)
    public.parent.mkdir(parents=True)
    public.write_text(TEST_KEY + "\n")
    config = automation.stack_config(substrate.record.request, substrate.files.root)
    run = run_program(config, stack=stack)
    providers = {r.urn: r.inputs["uri"] for r in run.monitor.of_type(PROVIDER)}
    declared = {
        r.inputs["name"]: providers[r.provider.rsplit("::", 1)[0]] for r in run.monitor.of_type(DOMAIN)
    }
    assert declared == {node.domain: node.uri for node in substrate.record.nodes}
    user_data = {r.inputs["name"]: r.inputs["networkConfig"] for r in run.monitor.of_type(CLOUD_INIT)}
    for node in substrate.record.nodes:  # the address ssh and status use is the one cloud-init sets
        assert str(node.address) in user_data[f"{node.domain}-cloudinit.iso"]


def test_down_selects_the_stack_up_made(home: Path) -> None:
    request = automation.LabRequest(spec=ROOT / "stacks" / "default.lab.yaml", image="/images/node.qcow2")
    substrate = LibvirtSubstrate.prepare(request)
    assert automation.stack_config(substrate.record.request, substrate.files.root) == automation.stack_config(
        request, substrate.files.root
    )
