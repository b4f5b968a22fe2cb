"""Install-time attestation set-up: register every host's TPM keys and give the verifiers their policy.

Runs on the outer machine after the playbook, because only it holds the lab's attestation CA key.
For each host: the host's TPM offers its EK and a restricted AK (``nestlab-trust enroll``), the
registrar proves by credential activation that both live in the same TPM
(:func:`nestlab.trust.attest.register`), issues an AK certificate signed by the attestation CA and
puts the registration and certificate on the host, which presents them with every quote. A
verifier that trusts the CA certificate can then check any host's AK without a registry of its own.

The measurement policy lists what hosts may have measured: the nestlab wheel and pod-kernel
package, the signed pod kernel and its initramfs, and each host's agent configuration as installed.
Policies accumulate: a digest that was good in an earlier ``up`` stays allowed, because hosts that
have not rebooted since still carry its measurement in their PCRs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from nestlab.paths import LabFiles
from nestlab.provision.remote import Remote
from nestlab.spec.model import Role
from nestlab.spec.plan import Plan
from nestlab.trust import attest, pcrs
from nestlab.trust.akcert import issue_ak_certificate
from nestlab.trust.errors import PolicyError
from nestlab.trust.keys import LabKeys
from nestlab.trust.policy import Policy, parse_policy, with_firmware
from nestlab.trust.verdict import HostName

HOST_TRUST_CLI: Final = "/opt/nestlab/bin/nestlab-trust"
REGISTRATION_PATH: Final = "/etc/nestlab/attestation/registration.json"
AK_CERT_PATH: Final = "/etc/nestlab/attestation/ak.crt"
POLICY_PATH: Final = "/etc/nestlab/attestation/policy.json"
AGENT_CONFIG_PATH: Final = "/etc/systemd/system/nestlab-agent.service"
FORBIDDEN_CMDLINE: Final = ("init=", "rdinit=")  # a pod may not swap pod-init for another program
Progress = Callable[[str], None]


@dataclass(frozen=True)
class KnownDigests:
    """sha256 digests of what this ``up`` installed on the hosts (lowercase hex)."""

    nestlab_wheel: str
    pod_kernel_deb: str
    kernel_image: str
    initramfs: str


def lab_policy(
    lab: str, known: KnownDigests, configs: Mapping[str, str], previous: Policy | None = None
) -> Policy:
    """The lab's policy: what this ``up`` installed, plus everything an earlier policy allowed."""
    old = previous or Policy(f"lab-{lab}", {}, frozenset(), frozenset(), frozenset())
    packages = {name: set(digests) for name, digests in old.packages.items()}
    packages.setdefault("nestlab", set()).add(known.nestlab_wheel)
    packages.setdefault("nestlab-pod-kernel", set()).add(known.pod_kernel_deb)
    return Policy(
        name=f"lab-{lab}",
        packages={name: frozenset(digests) for name, digests in sorted(packages.items())},
        kernels=old.kernels | {known.kernel_image},
        initramfs=old.initramfs | {known.initramfs},
        configs=old.configs | frozenset(configs.values()),
        forbidden_cmdline_args=FORBIDDEN_CMDLINE,
        firmware=old.firmware,
    )


def recorded_firmware(policy: Policy, offered: Mapping[str, Any], previous: Policy | None = None) -> Policy:
    """``policy`` allowing the PCR 0-7 values a host's TPM showed at enrollment (``nestlab-trust
    enroll``'s ``firmwarePcrs``) and every set ``previous`` allowed: what the registrar saw at install,
    like Keylime's TPM policy. All-zero values (nspawn hosts) and older hosts without the field add
    nothing, so those labs keep expecting no firmware."""
    for values in previous.firmware if previous else ():
        policy = with_firmware(policy, values)
    raw = offered.get("firmwarePcrs")
    if not isinstance(raw, dict):
        return policy
    missing = [index for index in pcrs.FIRMWARE if str(index) not in raw]
    if missing:
        raise PolicyError(f"the host's enrollment lacks firmware PCR {missing[0]}; update nestlab on it")
    return with_firmware(policy, {index: str(raw[str(index)]) for index in pcrs.FIRMWARE})


def _hosts(plan: Plan) -> list[str]:
    return [node.name for node in plan.nodes if node.role is Role.HOST]


def register_host(remote: Remote, keys: LabKeys, files: LabFiles, host: str) -> tuple[bool, dict[str, Any]]:
    """Register ``host``'s AK (unless its current registration is still on it); whether that changed
    anything, and what the host's TPM offered (keys and firmware PCR values)."""
    offered = dict(json.loads(remote.run(host, [HOST_TRUST_CLI, "enroll"]).stdout))
    enrollment = attest.Enrollment(bytes.fromhex(offered["ekPublic"]), bytes.fromhex(offered["akPublic"]))
    record_dir = files.attestation / "registrations"
    record, cert = record_dir / f"{host}.json", record_dir / f"{host}.crt"
    if record.exists() and cert.exists():
        known = attest.registration_from_json(json.loads(record.read_text(encoding="utf-8")))
        same_keys = (known.ek_public, known.ak_public) == (enrollment.ek_public, enrollment.ak_public)
        if same_keys and remote.read(host, REGISTRATION_PATH) == record.read_text(encoding="utf-8"):
            return remote.write(host, AK_CERT_PATH, cert.read_text(encoding="ascii")), offered

    def activate(blob: bytes) -> bytes:
        answer = remote.run(host, [HOST_TRUST_CLI, "activate"], stdin=blob.hex() + "\n")
        return bytes.fromhex(answer.stdout.strip())

    registration = attest.register(HostName(host), enrollment, activate)
    record_dir.mkdir(parents=True, exist_ok=True)
    issue_ak_certificate(keys, registration, cert)
    record.write_text(
        json.dumps(attest.registration_to_json(registration), indent=1) + "\n", encoding="utf-8"
    )
    remote.write(host, REGISTRATION_PATH, record.read_text(encoding="utf-8"))
    remote.write(host, AK_CERT_PATH, cert.read_text(encoding="ascii"))
    return True, offered


def config_digest(remote: Remote, host: str) -> str:
    """sha256 of a host's agent configuration (its systemd unit) as installed."""
    return remote.run(host, ["sha256sum", AGENT_CONFIG_PATH]).stdout.split()[0]


def config_digests(remote: Remote, hosts: list[str]) -> dict[str, str]:
    """sha256 of each host's agent configuration (its systemd unit) as installed."""
    return {host: config_digest(remote, host) for host in hosts}


def load_policy(path: Path) -> Policy | None:
    if not path.exists():
        return None
    try:
        return parse_policy(path.read_text(encoding="utf-8"))
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}; delete it and run `nestlab up` again to rebuild it") from exc


def write_policy(path: Path, policy: Policy) -> bool:
    """Write ``policy`` as JSON; False when the file already said exactly that."""
    text = json.dumps(policy.to_json(), indent=1, sort_keys=True) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return True


def policy_file(files: LabFiles) -> Path:
    return files.attestation / "policy.json"


def prepare_policy(plan: Plan, files: LabFiles, known: KnownDigests) -> Path:
    """Before the playbook: the policy with this run's digests (configs from earlier runs)."""
    path = policy_file(files)
    write_policy(path, lab_policy(plan.lab.name, known, {}, load_policy(path)))
    return path


def setup(plan: Plan, files: LabFiles, keys: LabKeys, known: KnownDigests, emit: Progress) -> Policy:
    """After the playbook: register hosts, record their configurations, publish the policy."""
    remote = Remote(files)
    hosts = _hosts(plan)
    # each host's SSH round trips in parallel: one after another they were most of a no-op `up`
    with ThreadPoolExecutor(max_workers=max(1, len(plan.nodes))) as pool:
        registered = list(pool.map(lambda host: register_host(remote, keys, files, host), hosts))
        for host, (changed, _) in zip(hosts, registered, strict=True):
            done = "registered, certificate issued" if changed else "already registered"
            emit(f"attestation: {host} AK {done}")
        path = policy_file(files)
        digests = dict(zip(hosts, pool.map(lambda host: config_digest(remote, host), hosts), strict=True))
        policy = lab_policy(plan.lab.name, known, digests, load_policy(path))
        for _, offered in registered:  # firmware PCR 0-7 values as the registrar saw them at install
            policy = recorded_firmware(policy, offered)
        write_policy(path, policy)
        text = path.read_text(encoding="utf-8")
        verifiers = [node.name for node in plan.nodes if node.role is Role.CONTROL_PLANE]
        list(pool.map(lambda node: remote.write(node, POLICY_PATH, text), verifiers))
    emit(f"attestation: policy {policy.name} ({policy.digest()[:16]}…) on the control plane")
    return policy
