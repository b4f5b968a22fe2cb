"""Fragment parsing, merging into a base .config, and the check that catches lost options."""

from __future__ import annotations

import pytest

from nestlab.runtime import kconfig
from nestlab.runtime.kconfig import KernelConfigError, Option


def test_parse_fragment_reads_set_and_unset_and_skips_comments() -> None:
    reqs = kconfig.parse_fragment("f.config", '# why\nCONFIG_A=y\n\n# CONFIG_B is not set\nCONFIG_C="x y"\n')
    assert [(r.option, r.value, r.source) for r in reqs] == [
        ("CONFIG_A", "y", "f.config:2"),
        ("CONFIG_B", "n", "f.config:4"),
        ("CONFIG_C", '"x y"', "f.config:5"),
    ]


def test_parse_fragment_rejects_garbage_naming_the_line() -> None:
    with pytest.raises(KernelConfigError, match=r"f.config:2: not a config line: 'VIRTIO=y'"):
        kconfig.parse_fragment("f.config", "CONFIG_A=y\nVIRTIO=y\n")


def test_merge_rejects_two_fragments_disagreeing() -> None:
    with pytest.raises(
        KernelConfigError, match=r"CONFIG_PCI: a.config:1 asks for 'y' but b.config:1 asks for 'n'"
    ):
        kconfig.merge_fragments([("a.config", "CONFIG_PCI=y\n"), ("b.config", "# CONFIG_PCI is not set\n")])


def test_merge_accepts_the_same_value_twice() -> None:
    merged = kconfig.merge_fragments([("a", "CONFIG_X=y\n"), ("b", "CONFIG_X=y\nCONFIG_Y=3\n")])
    assert {o: r.value for o, r in merged.items()} == {"CONFIG_X": "y", "CONFIG_Y": "3"}


def test_apply_replaces_base_values_and_keeps_the_rest() -> None:
    base = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_C=n\nCONFIG_D=y\n"
    reqs = kconfig.merge_fragments([("f", "CONFIG_B=y\n# CONFIG_D is not set\nCONFIG_E=y\n")])
    merged = kconfig.apply(base, reqs)
    assert kconfig.parse_values(merged) == {
        "CONFIG_A": "y",
        "CONFIG_B": "y",
        "CONFIG_C": "n",
        "CONFIG_D": "n",
        "CONFIG_E": "y",
    }
    assert merged.count("CONFIG_B") == 1


def test_check_names_lost_and_changed_options() -> None:
    reqs = kconfig.merge_fragments([("f", "CONFIG_EROFS_FS=y\nCONFIG_HZ=100\n# CONFIG_PCI is not set\n")])
    final = "CONFIG_HZ=250\n# CONFIG_PCI is not set\n"  # EROFS absent: dependency not met
    mismatches = kconfig.check(reqs, final)
    assert {(m.requirement.option, m.actual) for m in mismatches} == {
        ("CONFIG_EROFS_FS", "n"),
        ("CONFIG_HZ", "250"),
    }
    with pytest.raises(
        KernelConfigError, match=r"CONFIG_EROFS_FS: f:1 asks for 'y' but the final .config has 'n'"
    ):
        kconfig.ensure(reqs, final)


def test_absent_option_satisfies_not_set() -> None:
    reqs = kconfig.merge_fragments([("f", "# CONFIG_ACPI is not set\n")])
    kconfig.ensure(reqs, "CONFIG_64BIT=y\n")
    assert kconfig.check(reqs, "CONFIG_ACPI=y\n")[0].requirement.option == Option("CONFIG_ACPI")


def test_repository_fragments_parse_and_agree() -> None:
    from nestlab.runtime import kernel

    merged = kconfig.merge_fragments(kernel.read_fragments())
    for option in (
        "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES",
        "CONFIG_VIRTIO_BLK",
        "CONFIG_EROFS_FS",
        "CONFIG_PVH",
    ):
        assert merged[Option(option)].value == "y"
    assert merged[Option("CONFIG_MODULES")].value == "n"
