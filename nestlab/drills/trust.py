"""Drills on the trust chain: a tampered pod kernel on a host, an unknown measurement in a host's TPM.

The commands are the ones docs/trust.md gives an administrator (the host's ``nestlab-trust``
tool, ``nestlab attest``); each drill takes the verdict while the lab is broken, restores (the
genuine kernel back; a TPM reset, as a reboot does) and takes the verdict again.
"""

from __future__ import annotations

import time
from typing import Any

from nestlab.drills.base import Drill, Session
from nestlab.drills.health import ATTESTATION_TAINT
from nestlab.drills.lab import DrillError, wait_until
from nestlab.spec.model import Role

Obj = dict[str, Any]
KERNEL = (
    "/usr/lib/nestlab/pod-kernel/vmlinux.efi"  # the signed pod kernel the agent checks before each launch
)
BACKUP = "/root/vmlinux.efi.drill"
TRUST_CLI = "/opt/nestlab/bin/nestlab-trust"
JOB_IMAGE = "depot:5000/nestlab/job:ok"  # a demo image whose container exits 0 at once
# One byte, past the PE headers, flipped in place: the Authenticode hash no longer matches.
FLIP = (
    "python3 -c \"import sys; f=open(sys.argv[1],'r+b'); f.seek(4096); b=f.read(1); f.seek(4096); "
    f'f.write(bytes([b[0]^1])); f.close()" {KERNEL}'
)
TPM_RESET = "systemctl restart nestlab-swtpm nestlab-measured-boot"  # what a reboot does to the PCRs
POD_TIMEOUT_S = 300.0
ATTEST_TIMEOUT_S = 180.0


def _pod_on(session: Session, name: str, host: str) -> float:
    """Create a one-shot pod pinned to ``host``; seconds until it failed, ran or finished."""
    session.create(
        f"/api/v1/namespaces/{session.namespace}/pods",
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {"kubernetes.io/hostname": host},
                "containers": [{"name": "job", "image": JOB_IMAGE}],
            },
        },
    )
    return wait_until(
        lambda: _phase(session, name) in ("Failed", "Running", "Succeeded"),
        f"pod {name} on {host} failing or running",
        POD_TIMEOUT_S,
    )


def _pod(session: Session, name: str) -> Obj:
    return session.lab.get(f"/api/v1/namespaces/{session.namespace}/pods/{name}") or {}


def _phase(session: Session, name: str) -> str:
    return str((_pod(session, name).get("status") or {}).get("phase") or "")


def _digest(session: Session, host: str) -> str:
    return session.lab.sh(host, f"sha256sum {KERNEL}").stdout.split()[0]


def kernel_tamper(session: Session) -> None:
    lab = session.lab
    host = lab.nodes(Role.HOST)[-1]
    genuine = _digest(session, host)
    lab.sh(host, f"cp -p {KERNEL} {BACKUP}")

    def put_back() -> None:
        lab.sh(host, f"if test -f {BACKUP}; then cp -p {BACKUP} {KERNEL} && rm -f {BACKUP}; fi")
        if _digest(session, host) != genuine:
            raise DrillError(f"{host}: {KERNEL} does not hold the genuine kernel again (sha256 {genuine})")

    undo = f"the genuine pod kernel back on {host}"
    session.undo(undo, put_back)
    session.say(f"break: flip one byte of {KERNEL} on {host}, then start a pod there")
    lab.sh(host, FLIP)
    refused_s = _pod_on(session, "tampered", host)
    status = _pod(session, "tampered").get("status") or {}
    uid = str(_pod(session, "tampered").get("metadata", {}).get("uid", "?"))
    qemu = lab.sh(host, f"pgrep -f '[q]emu-system.*{uid}' | wc -l").stdout.strip()
    refused = status.get("phase") == "Failed" and status.get("reason") == "KernelVerificationFailed"
    during = (
        f"FAILED: {status.get('reason')}: {str(status.get('message', ''))[:120]}"
        if refused
        else f"PASSED: the pod is {status.get('phase')} (the tampered kernel was NOT refused)"
    )
    session.figure("refused_after_s", "tampered launch refused, from the pod's creation", refused_s, "s")
    session.figure("qemu_started_for_tampered_pod", "QEMU processes started for it", int(qemu or 0))
    session.check(
        "the tampered kernel was refused before any VM started",
        refused and qemu == "0",
        f"phase {status.get('phase')}, reason {status.get('reason')}, {qemu} QEMU",
    )
    _, verdicts = lab.attest(host)  # a refused kernel is never measured: the host still attests
    attested_during = _text(verdicts[0] if verdicts else None)
    session.say("restore: the genuine kernel back; a new pod on the same host must boot")
    put_back()
    session.restored(undo)
    clean_s = _pod_on(session, "clean", host)
    phase = _phase(session, "clean")
    session.figure(
        "clean_pod_after_s", "a pod on the restored kernel running, from its creation", clean_s, "s"
    )
    session.check(
        "a pod boots on the genuine kernel again", phase in ("Running", "Succeeded"), f"phase {phase}"
    )
    after = "PASSED" if phase in ("Running", "Succeeded") else "FAILED"
    session.verdict(f"kernel check on {host} (sbverify before launch)", during, f"{after}: pod clean {phase}")
    _, verdicts = lab.attest(host)
    session.verdict(f"attestation of {host}", attested_during, _text(verdicts[0] if verdicts else None))


def _tainted(session: Session, host: str) -> bool:
    node = session.lab.get(f"/api/v1/nodes/{host}") or {}
    return any(t.get("key") == ATTESTATION_TAINT for t in (node.get("spec") or {}).get("taints") or [])


def _text(verdict: Obj | None) -> str:
    if verdict is None:
        return "FAILED: no verdict"
    if verdict.get("passed") is True:
        return "PASSED"
    return "FAILED: " + "; ".join(str(r) for r in verdict.get("reasons") or ["no reason"])[:160]


def rogue_measurement(session: Session) -> None:
    lab = session.lab
    host = lab.nodes(Role.HOST)[1]
    undo = f"TPM reset on {host} ({TPM_RESET}), as a reboot does"
    session.undo(undo, lambda: lab.sh(host, TPM_RESET))
    session.say(f"break: extend an unknown package measurement (rootkit 6.6.6) into {host}'s TPM")
    lab.sh(host, f"{TRUST_CLI} measure --type package --name rootkit --version 6.6.6 /etc/hostname")
    began = time.monotonic()
    code, verdicts = lab.attest(host)
    session.figure(
        "attest_s",
        f"nestlab attest {host} (SSH, verifier, quote, replay, policy)",
        time.monotonic() - began,
        "s",
    )
    during = _text(verdicts[0] if verdicts else None)
    tainted = _tainted(session, host)
    session.figure("attest_exit_code_during", "its exit code", code)
    session.figure("tainted_during", f"{host} tainted {ATTESTATION_TAINT}", "yes" if tainted else "no")
    session.check("attestation fails naming the rogue measurement", code == 1 and "rootkit" in during, during)
    session.check(f"{host} is tainted, so no new pod lands there", tainted)
    session.say(f"restore: {undo}")
    reset_at = time.monotonic()
    lab.sh(host, TPM_RESET)
    session.restored(undo)
    session.figure("tpm_reset_s", f"{TPM_RESET} on {host}", time.monotonic() - reset_at, "s")
    wait_until(lambda: lab.attest(host)[0] == 0, f"{host} attesting again", ATTEST_TIMEOUT_S, poll=2.0)
    session.figure(
        "passes_again_after_s",
        "attestation passes again, from the TPM reset",
        time.monotonic() - reset_at,
        "s",
    )
    wait_until(lambda: not _tainted(session, host), f"the taint off {host}", 60)
    session.figure(
        "untainted_after_s", "the taint removed, from the TPM reset", time.monotonic() - reset_at, "s"
    )
    _, after = lab.attest(host)
    session.verdict(f"attestation of {host}", during, _text(after[0] if after else None))


TAMPER = Drill(
    "kernel-tamper",
    "one byte of a host's signed pod kernel is flipped",
    "Flips a byte of a host's pod kernel and starts a pod there; measures the refusal, "
    "restores, starts another.",
    (
        "A vSphere Pod boots the CRX kernel that ships in a signed VIB; ESXi checks signatures (Secure Boot)",
        "before anything runs. The lab's agent runs sbverify against the lab's db certificate before every",
        "launch: a kernel whose Authenticode hash no longer matches is refused, the pod fails with",
        "KernelVerificationFailed and no VM (QEMU) ever starts. A refused kernel is never measured, so",
        "the host still attests; with the genuine file back the next pod boots.",
    ),
    kernel_tamper,
    trust=True,
)
ROGUE = Drill(
    "rogue-measurement",
    "an unknown measurement is extended into a host's TPM",
    "Measures a fake 'rootkit' package into a host's TPM; attestation must fail and taint the host, "
    "then pass after a TPM reset.",
    (
        "vSphere attests ESXi hosts with TPM 2.0 measured boot (vSphere Trust Authority / host attestation):",
        "every component is hashed into PCRs before it runs, and a verifier compares the quoted PCRs and",
        "event log with a policy of known-good values. An unknown component fails attestation, so the",
        "host is marked untrusted: here it is tainted and new pods go to other hosts. A reboot (TPM reset)",
        "measures only the genuine components again and the host passes.",
    ),
    rogue_measurement,
    trust=True,
)
