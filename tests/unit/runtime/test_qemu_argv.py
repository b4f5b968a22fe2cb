"""The microvm command line: what is there, what is deliberately absent, and VM sizing."""

from __future__ import annotations

from pathlib import Path

import pytest

from nestlab.runtime import qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import DiskSerial
from nestlab.runtime.qemu import ContainerResources, Disk, Tap, VmConfig


def config(**kwargs: object) -> VmConfig:
    fields: dict[str, object] = {
        "name": "demo",
        "kernel": Path("/k/vmlinux"),
        "initrd": Path("/k/initramfs.cpio"),
        "vcpus": 1,
        "memory_mib": 160,
        "disks": (
            Disk(Path("/p/pod.desc"), DiskSerial("nestlab-pod")),
            Disk(Path("/p/eph.ext4"), DiskSerial("nestlab-eph"), read_only=False),
        ),
        "console_log": Path("/p/console.log"),
        "control_socket": Path("/p/control.sock"),
        "qmp_socket": Path("/p/qmp.sock"),
        "accel": Accel("tcg", "test"),
    }
    fields.update(kwargs)
    return VmConfig(**fields)  # type: ignore[arg-type]


def value_after(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_microvm_without_acpi_defaults_or_reboot() -> None:
    args = qemu.argv(config())
    assert value_after(args, "-M") == ["microvm,acpi=off"]
    assert {"-nodefaults", "-no-user-config", "-no-reboot"} <= set(args)
    assert value_after(args, "-kernel") == ["/k/vmlinux"]
    assert value_after(args, "-initrd") == ["/k/initramfs.cpio"]
    assert not {"-bios", "-hda", "-cdrom", "-net", "-usb", "-vga"} & set(args)
    assert all("pci" not in a for a in args)


def test_tcg_uses_a_small_translation_cache_and_kvm_the_host_cpu() -> None:
    tcg = qemu.argv(config())
    assert value_after(tcg, "-accel") == ["tcg,tb-size=64"]
    assert value_after(tcg, "-cpu") == ["max"]
    kvm = qemu.argv(config(accel=Accel("kvm", "probe")))
    assert value_after(kvm, "-accel") == ["kvm"]
    assert value_after(kvm, "-cpu") == ["host"]


def test_disks_are_virtio_mmio_with_serials_and_images_read_only() -> None:
    args = qemu.argv(config())
    assert value_after(args, "-drive") == [
        "file=/p/pod.desc,if=none,id=disk0,format=raw,readonly=on",
        "file=/p/eph.ext4,if=none,id=disk1,format=raw",
    ]
    devices = value_after(args, "-device")
    assert "virtio-blk-device,drive=disk0,serial=nestlab-pod" in devices
    assert "virtio-blk-device,drive=disk1,serial=nestlab-eph" in devices


def test_console_control_and_qmp_channels() -> None:
    args = qemu.argv(config())
    chardevs = value_after(args, "-chardev")
    assert "file,id=console,path=/p/console.log" in chardevs
    assert "socket,id=control,path=/p/control.sock,reconnect=1" in chardevs  # client: the host listens first
    assert value_after(args, "-serial") == ["chardev:console"]
    assert "virtserialport,chardev=control,name=nestlab.control" in value_after(args, "-device")
    assert value_after(args, "-qmp") == ["unix:/p/qmp.sock,server=on,wait=off"]


def test_kernel_cmdline_has_console_reset_and_extra_params() -> None:
    args = qemu.argv(config(cmdline=("nestlab.ip=198.18.4.10/24",)))
    (append,) = value_after(args, "-append")
    assert append.split() == ["console=ttyS0", "quiet", "reboot=t", "panic=-1", "nestlab.ip=198.18.4.10/24"]


def test_sandbox_always_and_runas_only_when_given() -> None:
    args = qemu.argv(config())
    assert value_after(args, "-sandbox")[0].startswith("on,")
    assert "spawn=deny" in value_after(args, "-sandbox")[0]
    assert "-runas" not in args
    assert value_after(qemu.argv(config(runas="64900:64900")), "-runas") == ["64900:64900"]


def test_tap_network_only_when_asked() -> None:
    assert "-netdev" not in qemu.argv(config())
    args = qemu.argv(config(tap=Tap("nlp0", "52:54:00:00:00:01")))
    assert value_after(args, "-netdev") == ["tap,id=net0,ifname=nlp0,script=no,downscript=no"]
    assert "virtio-net-device,netdev=net0,mac=52:54:00:00:00:01" in value_after(args, "-device")


def test_vcpus_and_memory_on_the_command_line() -> None:
    args = qemu.argv(config(vcpus=2, memory_mib=544))
    assert value_after(args, "-smp") == ["2"]
    assert value_after(args, "-m") == ["544M"]


@pytest.mark.parametrize(
    ("containers", "expected"),
    [
        ([], (1, 64)),
        ([ContainerResources()], (1, 128 + 32)),
        ([ContainerResources(cpu_request_m=250, memory_request_mib=64)], (1, 96)),
        ([ContainerResources(cpu_limit_m=1500, memory_limit_mib=512, memory_request_mib=100)], (2, 544)),
        ([ContainerResources(cpu_limit_m=500), ContainerResources(cpu_request_m=600)], (2, 288)),
        ([ContainerResources(memory_limit_mib=8)], (1, 64)),
    ],
)
def test_size_from_requests_and_limits(
    containers: list[ContainerResources], expected: tuple[int, int]
) -> None:
    assert qemu.size(containers) == expected


def test_launch_goes_through_the_spawn_chokepoint(tmp_path: Path) -> None:
    calls: list[tuple[list[str], Path]] = []

    class FakeProcess:
        pid = 4242

    def spawn(argv: list[str], *, log: Path) -> FakeProcess:
        calls.append((argv, log))
        return FakeProcess()

    vm = qemu.QemuVmm(spawn=spawn).launch(config(console_log=tmp_path / "console.log"))
    assert vm.pid == 4242
    assert calls[0][0] == qemu.argv(config(console_log=tmp_path / "console.log"))
    assert calls[0][1] == tmp_path / "console.qemu.log"


def test_no_control_port_without_a_socket_and_acpi_only_on_request() -> None:
    args = qemu.argv(config(control_socket=None, acpi=True))
    assert not any("virtserialport" in a or "virtio-serial" in a for a in args)
    assert value_after(args, "-M") == ["microvm,acpi=on"]


CPUINFO = "processor\t: 0\ncpu MHz\t\t: 2596.122\nflags\t\t: fpu tsc constant_tsc nonstop_tsc\n"


def test_host_tsc_rate_only_when_cpuinfo_states_it_reliably() -> None:
    assert qemu.host_tsc_khz(CPUINFO, cpufreq_present=False) == 2596122
    assert qemu.host_tsc_khz(CPUINFO, cpufreq_present=True) is None  # cpu MHz is then the current rate
    assert qemu.host_tsc_khz(CPUINFO.replace(" nonstop_tsc", ""), cpufreq_present=False) is None
    assert qemu.host_tsc_khz("flags\t: constant_tsc nonstop_tsc\n", cpufreq_present=False) is None


def test_tsc_rate_goes_on_the_kernel_command_line() -> None:
    (append,) = value_after(qemu.argv(config(tsc_khz=2596122)), "-append")
    assert {"tsc_early_khz=2596122", "tsc=reliable"} <= set(append.split())
    (plain,) = value_after(qemu.argv(config()), "-append")
    assert "tsc_early_khz" not in plain


def test_no_tsc_rate_under_kvm() -> None:
    assert qemu.default_tsc_khz(Accel("kvm", "probe")) is None
