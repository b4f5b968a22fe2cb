"""The measurement policy: which digests a host may have measured, and the check of one event.

A policy is a JSON document (see docs/trust.md)::

    {"name": "lab-default",
     "packages": {"nestlab-agent": ["<sha256 of the .deb>"], "nestlab-pod-kernel": ["..."]},
     "kernels": ["<sha256 of a signed pod kernel image>"],
     "initramfs": ["<sha256>"],
     "configs": ["<sha256 of an agent configuration file>"],
     "forbidden_cmdline_args": ["init=", "rdinit="],
     "firmware": [{"0": "<sha256 PCR value>", "1": "...", ..., "7": "..."}]}

``firmware`` lists the PCR 0-7 value sets a host's firmware may produce (the outer ``up`` records
what each host's TPM showed at registration, like Keylime's TPM policy). Absent or empty means no
firmware is expected: PCRs 0-7 must be zero, as on the nspawn lab's nodes.

Its digest (sha256 of its canonical JSON) goes into every verdict, so a verdict says exactly which
policy it was judged by. Pure: no files, no processes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from nestlab.trust import pcrs
from nestlab.trust.errors import PolicyError
from nestlab.trust.eventlog import Event

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_LISTS = ("kernels", "initramfs", "configs")


@dataclass(frozen=True)
class Policy:
    """Known-good digests, by kind."""

    name: str
    """Shown in verdicts and errors."""
    packages: Mapping[str, frozenset[str]]
    """Package name -> sha256 digests of its allowed .deb files."""
    kernels: frozenset[str]
    """sha256 digests of allowed pod kernel images."""
    initramfs: frozenset[str]
    """sha256 digests of allowed pod initramfs images."""
    configs: frozenset[str]
    """sha256 digests of allowed agent configuration files."""
    forbidden_cmdline_args: tuple[str, ...] = ()
    """Kernel command-line argument prefixes a pod may not boot with."""
    firmware: tuple[Mapping[int, str], ...] = ()
    """Allowed PCR 0-7 value sets (index -> sha256 hex, all eight); empty: PCRs 0-7 must be zero."""

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "name": self.name,
            "packages": {name: sorted(digests) for name, digests in sorted(self.packages.items())},
            "kernels": sorted(self.kernels),
            "initramfs": sorted(self.initramfs),
            "configs": sorted(self.configs),
            "forbidden_cmdline_args": list(self.forbidden_cmdline_args),
        }
        if self.firmware:  # absent when empty, so a policy without firmware keeps its old digest
            document["firmware"] = sorted(
                ({str(index): value for index, value in sorted(values.items())} for values in self.firmware),
                key=lambda values: json.dumps(values, sort_keys=True),
            )
        return document

    def digest(self) -> str:
        """sha256 of the canonical JSON form: the policy's identity."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def parse_policy(text: str) -> Policy:
    """Parse a policy document; PolicyError names the field that is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy is not JSON ({exc.msg} at line {exc.lineno})") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise PolicyError("policy must be a JSON object with a string 'name'")
    unknown = sorted(raw.keys() - {"name", "packages", *_LISTS, "forbidden_cmdline_args", "firmware"})
    if unknown:
        raise PolicyError(f"policy has unknown fields: {', '.join(unknown)}")
    packages = raw.get("packages", {})
    if not isinstance(packages, dict):
        raise PolicyError("policy.packages must map package names to digest lists")
    args = raw.get("forbidden_cmdline_args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) and a for a in args):
        raise PolicyError("policy.forbidden_cmdline_args must be a list of non-empty strings")
    return Policy(
        name=raw["name"],
        packages={name: _digests(digests, f"policy.packages.{name}") for name, digests in packages.items()},
        kernels=_digests(raw.get("kernels", []), "policy.kernels"),
        initramfs=_digests(raw.get("initramfs", []), "policy.initramfs"),
        configs=_digests(raw.get("configs", []), "policy.configs"),
        forbidden_cmdline_args=tuple(args),
        firmware=_firmware(raw.get("firmware", [])),
    )


def _firmware(value: object) -> tuple[Mapping[int, str], ...]:
    where = "policy.firmware"
    if not isinstance(value, list):
        raise PolicyError(f"{where} must be a list of PCR 0-7 value sets")
    expected_keys = {str(index) for index in pcrs.FIRMWARE}
    sets: list[Mapping[int, str]] = []
    for position, values in enumerate(value):
        if not isinstance(values, dict) or set(values) != expected_keys:
            raise PolicyError(f'{where}[{position}] must map each of PCRs 0-7 (as "0".."7") to a value')
        if not all(isinstance(v, str) and _HEX64.match(v) for v in values.values()):
            raise PolicyError(
                f"{where}[{position}] values must be sha256 digests (64 lowercase hex characters)"
            )
        sets.append({int(index): digest for index, digest in values.items()})
    return tuple(sets)


def firmware_values(values: Mapping[int, bytes]) -> dict[int, str]:
    """The policy form (index -> hex) of PCR 0-7 values read from a TPM or a verdict."""
    return {index: values[index].hex() for index in pcrs.FIRMWARE}


def with_firmware(policy: Policy, values: Mapping[int, str]) -> Policy:
    """``policy`` also allowing these PCR 0-7 values (what a host's TPM showed at registration).

    All-zero values (a host without firmware) add nothing: an empty list already means exactly that.
    """
    bad = [index for index in pcrs.FIRMWARE if not _HEX64.match(str(values.get(index)))]
    if bad:
        raise PolicyError(
            f"firmware value of PCR {bad[0]} is not a sha256 digest (64 lowercase hex characters)"
        )
    if all(values[index] == pcrs.ZERO.hex() for index in pcrs.FIRMWARE) or values in policy.firmware:
        return policy
    return replace(policy, firmware=(*policy.firmware, {index: values[index] for index in pcrs.FIRMWARE}))


def check_firmware(policy: Policy, values: Mapping[int, bytes]) -> str | None:
    """None when the policy allows these PCR 0-7 values, else a reason naming the first PCR that differs."""
    actual = firmware_values(values)
    allowed = policy.firmware or ({index: pcrs.ZERO.hex() for index in pcrs.FIRMWARE},)
    if actual in allowed:
        return None
    closest = min(allowed, key=lambda known: sum(known[i] != actual[i] for i in pcrs.FIRMWARE))
    index = next(i for i in pcrs.FIRMWARE if closest[i] != actual[i])
    if not policy.firmware:
        return (
            f"PCR {index} is {actual[index][:16]}… but policy {policy.name} expects no firmware (PCRs 0-7 "
            "zero): this host booted through firmware; record its values in the policy's firmware list"
        )
    return (
        f"PCR {index} value {actual[index][:16]}… is not among the firmware values of policy {policy.name} "
        f"(closest known set has {closest[index][:16]}…): the host's firmware, its settings or its boot "
        "loader changed"
    )


def _digests(value: object, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(d, str) and _HEX64.match(d) for d in value):
        raise PolicyError(f"{where} must be a list of sha256 digests (64 lowercase hex characters)")
    return frozenset(value)


def check_event(policy: Policy, event: Event) -> str | None:
    """None when the policy allows the event, else the reason it does not.

    The event's fields are bound to its digest (the parser checked that), so judging ``data`` here is
    judging what was extended into the TPM.
    """
    expected_pcr = pcrs.ASSIGNMENT.get(event.type)
    if expected_pcr is None:
        return f"unknown event type {event.type!r}: not in the PCR assignment"
    if event.pcr != expected_pcr:
        return f"{event.type} events belong in PCR {expected_pcr}, this one was extended into PCR {event.pcr}"
    if event.type == "pod-cmdline":
        return _check_cmdline(policy, event)
    content = event.data.get("sha256")
    if not isinstance(content, str):
        return f"{event.description}: {event.type} event has no content digest in data.sha256"
    if content not in _known(policy, event):
        return (
            f"{event.description}: {event.type} digest {content[:16]}… is not known to policy {policy.name}"
        )
    return None


def _known(policy: Policy, event: Event) -> frozenset[str]:
    if event.type == "package":
        return policy.packages.get(str(event.data.get("name")), frozenset())
    return {"config": policy.configs, "pod-kernel": policy.kernels, "pod-initramfs": policy.initramfs}[
        event.type
    ]


def _check_cmdline(policy: Policy, event: Event) -> str | None:
    cmdline = event.data.get("cmdline")
    if not isinstance(cmdline, str):
        return "pod-cmdline event has no command line in data.cmdline"
    for arg in cmdline.split():
        for forbidden in policy.forbidden_cmdline_args:
            if arg.startswith(forbidden):
                return (
                    f"{event.description}: command line argument {arg!r} is forbidden by policy {policy.name}"
                )
    return None
