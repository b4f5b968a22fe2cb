"""Measured boot of a host: the packages the agent and pod kernel come from, and the agent's configuration.

Run once per host boot (``nestlab-measured-boot.service``, before the agent starts), and safe to
run again: when PCRs 8, 9 and 11 hold only what the firmware measured there (all zero without
firmware; Linux's initrd event in PCR 9 on a libvirt host) the TPM was reset (a reboot), so the log
starts empty; otherwise a component already in the log with the same name and sha256 is skipped, so a
re-run extends nothing twice. A component that changed since it was measured is measured again
(the log then shows both digests, and the policy judges the new one).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from nestlab.errors import UsageError
from nestlab.runtime import proc
from nestlab.trust import firmware, pcrs
from nestlab.trust.eventlog import EventLog
from nestlab.trust.measure import Extender, Measurer, file_digest

_TIMEOUT: Final = 60.0  # seconds for dpkg-deb to read a control field
_WHEEL_NAME = re.compile(r"^[A-Za-z0-9_.]+-(?P<version>[^-]+)(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$")


class PcrReader(Protocol):
    def pcr_read(self, indexes: Sequence[int]) -> dict[int, bytes]: ...


class BootTpm(Extender, PcrReader, Protocol):
    """What measured boot needs from a TPM (nestlab.trust.tpm.Tpm)."""


class ComponentError(UsageError):
    """A boot component cannot be measured (missing file, unreadable version)."""


@dataclass(frozen=True)
class Outcome:
    """One line of measure-boot's report."""

    action: str
    """``measured`` or ``skipped``."""
    type: str
    description: str
    sha256: str

    def line(self) -> str:
        return f"{self.action} {self.type} {self.description} sha256:{self.sha256}"


def package_version(path: Path, runner: proc.Runner = proc.run) -> str:
    """Version of a .deb (its control field) or of a wheel (METADATA, else the file name)."""
    if not path.is_file():
        raise ComponentError(f"boot component {path} does not exist; reinstall it or drop --package")
    if path.suffix == ".deb":
        try:
            return runner(["dpkg-deb", "-f", str(path), "Version"], timeout=_TIMEOUT).stdout.strip()
        except proc.ProcessError as exc:
            raise ComponentError(f"{path} is not a readable .deb: {exc}") from exc
    if path.suffix == ".whl":
        try:
            with zipfile.ZipFile(path) as wheel:
                metadata = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
                for line in wheel.read(metadata).decode(errors="replace").splitlines():
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
        except (zipfile.BadZipFile, StopIteration, OSError) as exc:
            match = _WHEEL_NAME.match(path.name)
            if match:
                return match["version"]
            raise ComponentError(f"{path} is not a readable wheel: {exc!r}") from exc
    raise ComponentError(f"boot component {path}: only .deb and .whl files carry a version")


def _already(log: EventLog, type_: str, key: str, value: str, sha256: str) -> bool:
    return any(
        e.type == type_ and e.data.get(key) == value and e.data.get("sha256") == sha256 for e in log.events
    )


def measure_boot(
    tpm: BootTpm,
    measurer: Measurer,
    packages: Sequence[tuple[str, Path]],
    configs: Sequence[Path],
    runner: proc.Runner = proc.run,
    *,
    firmware_log: bytes = b"",
) -> list[Outcome]:
    """Measure every package and config not yet in this boot's log; a fresh log after a TPM reset.

    After a reset nestlab's PCRs hold only what the firmware and boot loader put there (``firmware_log``,
    e.g. Linux's initrd event in PCR 9 on a libvirt host; nothing on a host without firmware).
    """
    values = tpm.pcr_read(pcrs.MEASURED)
    at_reset = firmware.replay(firmware.parse(firmware_log).events if firmware_log else (), pcrs.MEASURED)
    if all(values.get(index) == at_reset[index] for index in pcrs.MEASURED):
        measurer.reset()
    outcomes = []
    for name, path in packages:
        version = package_version(path, runner)
        digest = file_digest(path)
        if _already(measurer.read(), "package", "name", name, digest):
            outcomes.append(Outcome("skipped", "package", f"{name} {version}", digest))
        else:
            event = measurer.measure_package(name, version, path)
            outcomes.append(Outcome("measured", "package", event.description, digest))
    for path in configs:
        if not path.is_file():
            raise ComponentError(f"configuration {path} does not exist; drop --config or install it")
        digest = file_digest(path)
        if _already(measurer.read(), "config", "path", str(path), digest):
            outcomes.append(Outcome("skipped", "config", str(path), digest))
        else:
            measurer.measure_config(path)
            outcomes.append(Outcome("measured", "config", str(path), digest))
    return outcomes


def parse_package(text: str) -> tuple[str, Path]:
    """``NAME=PATH`` from the command line."""
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ComponentError(
            f"--package {text!r}: expected NAME=PATH, e.g. nestlab-pod-kernel=/var/lib/x.deb"
        )
    return name, Path(path)
