"""The stream port on the QEMU command line, and the pod launch listening on it before QEMU starts."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from nestlab.runtime import pod, qemu
from nestlab.runtime.accel import Accel
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription
from nestlab.runtime.qemu import Disk, VmConfig


def config(**kwargs: object) -> VmConfig:
    fields: dict[str, object] = {
        "name": "demo",
        "kernel": Path("/k/vmlinux"),
        "initrd": Path("/k/initramfs.cpio"),
        "vcpus": 1,
        "memory_mib": 160,
        "disks": (Disk(Path("/p/pod.desc"), DiskSerial("nestlab-pod")),),
        "console_log": Path("/p/console.log"),
        "control_socket": Path("/p/control.sock"),
        "qmp_socket": Path("/p/qmp.sock"),
        "accel": Accel("tcg", "test"),
    }
    fields.update(kwargs)
    return VmConfig(**fields)  # type: ignore[arg-type]


def value_after(args: list[str], flag: str) -> list[str]:
    return [args[i + 1] for i, arg in enumerate(args) if arg == flag]


def test_stream_port_is_a_second_reconnecting_virtserialport() -> None:
    args = qemu.argv(config(stream_socket=Path("/p/stream.sock")))
    assert "socket,id=stream,path=/p/stream.sock,reconnect=1" in value_after(args, "-chardev")
    devices = value_after(args, "-device")
    assert "virtio-serial-device,max_ports=3" in devices  # port 0 (console) + control + stream
    assert devices.index("virtio-serial-device,max_ports=3") < devices.index(
        "virtserialport,chardev=stream,name=nestlab.stream"
    )
    assert "virtserialport,chardev=control,name=nestlab.control" in devices
    assert sum(d.startswith("virtio-serial-device") for d in devices) == 1


def test_without_a_stream_socket_the_control_port_is_alone() -> None:
    devices = value_after(qemu.argv(config()), "-device")
    assert "virtio-serial-device,max_ports=2" in devices
    assert not any("nestlab.stream" in d for d in devices)


class RecordingVmm:
    """Checks, at the moment QEMU would start, that the stream socket already listens."""

    def __init__(self) -> None:
        self.config: VmConfig | None = None
        self.listening = False

    def launch(self, config: VmConfig) -> qemu.QemuVm:
        self.config = config
        assert config.stream_socket is not None
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(config.stream_socket))  # refused if nobody listened yet
        probe.close()
        self.listening = True
        raise qemu.VmError("stop here: the test needs no VM")


def test_launch_listens_on_the_stream_socket_before_qemu_and_cleans_up_on_failure(tmp_path: Path) -> None:
    image = DiskSerial("img-x")
    description = PodDescription("demo", (Container(ContainerName("c"), image, ("true",)),))
    vmm = RecordingVmm()
    work = Path(tempfile.mkdtemp(prefix="nls-")) / "vm"  # short: sun_path holds 108 bytes
    try:
        with pytest.raises(qemu.VmError, match="stop here"):
            pod.launch(
                description,
                {image: tmp_path / "img.erofs"},
                work,
                pod.BootFiles(tmp_path / "vmlinux", tmp_path / "initrd"),
                Accel("tcg", "test"),
                vmm=vmm,  # type: ignore[arg-type]
            )
        assert vmm.listening
        assert vmm.config is not None
        assert vmm.config.stream_socket == work / pod.STREAM_SOCKET
        assert not (work / pod.STREAM_SOCKET).exists()  # closed with the failed launch
        assert not (work / "control.sock").exists()
    finally:
        shutil.rmtree(work.parent)


def test_runas_ids() -> None:
    assert pod.runas_ids("64900:64900") == (64900, 64900)
    assert pod.runas_ids(None) is None
