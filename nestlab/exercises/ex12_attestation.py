"""Exercise 12, measured boot and attestation: done when esx-02's attestation failed and recovered
since namespace ex12 was made (its ``Attested`` condition is True again, with a transition after
that), it carries no attestation taint, and Deployment ex12/web, created while the host was
tainted, runs its 3 replicas on the other hosts (docs/exercises/12-attestation.md).

The reset resets esx-02's TPM (what a reboot does to its PCRs) whenever esx-02 does not attest, and
waits until it attests again.
"""

from __future__ import annotations

from nestlab.errors import NestlabError
from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces
from nestlab.exercises.ex09_host_failure import condition, restore_lab, timestamp, wait_until

NAMESPACE = "ex12"
HOST = "esx-02"
TAINT = "nestlab.dev/attestation-failed"
PASSED = "1 of 1 host(s) passed attestation"
TPM_RESET = "systemctl restart nestlab-swtpm nestlab-measured-boot"
ATTEST_TIMEOUT_S = 180.0  # a TPM reset and measured boot take seconds; the verifier's pass ~1.5 s


def attest_problem(lab: Lab) -> str | None:
    """None when ``nestlab attest esx-02`` passes now (it also records the verdict on the Node)."""
    try:
        out = lab.nestlab("attest", HOST, check=False)
    except NestlabError as exc:
        return str(exc)
    return None if PASSED in out else f"{HOST} does not pass attestation yet"


def check(lab: Lab) -> list[str]:
    """What of the failed verdict, the taint's effect and the recovery is still missing."""
    namespace = lab.get(f"/api/v1/namespaces/{NAMESPACE}")
    if namespace is None:
        return ["there is no namespace ex12 (step 1)"]
    began = timestamp((namespace.get("metadata") or {}).get("creationTimestamp"))
    missing: list[str] = []
    node = lab.get(f"/api/v1/nodes/{HOST}") or {}
    attested = condition(node, "Attested")
    changed = timestamp(attested.get("lastTransitionTime"))
    if attested.get("status") != "True":
        missing.append(f"{HOST} does not attest again: reset its TPM (step 7)")
    elif began is None or changed is None or changed < began:
        missing.append(
            f"{HOST}'s attestation has not failed and recovered since ex12 began: "
            "measure the rogue package (step 4) and reset the TPM (step 7)"
        )
    if any(t.get("key") == TAINT for t in (node.get("spec") or {}).get("taints") or []):
        missing.append(f"{HOST} still carries the taint {TAINT} (step 8)")
    deployment = lab.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/web")
    if deployment is None:
        return [*missing, f"there is no Deployment ex12/web: create it while {HOST} is tainted (step 6)"]
    pods = [
        p
        for p in lab.items(f"/api/v1/namespaces/{NAMESPACE}/pods")
        if ((p.get("metadata") or {}).get("labels") or {}).get("app") == "web"
    ]
    if any((p.get("spec") or {}).get("nodeName") == HOST for p in pods):
        missing.append(
            f"a pod of ex12/web runs on {HOST}: it was placed while {HOST} attested fine "
            f"(delete the Deployment, fail {HOST}'s attestation, create it again: steps 4-6)"
        )
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    if ready < 3:
        missing.append(f"Deployment ex12/web has {ready} of 3 replicas ready")
    return missing


def reset(lab: Lab) -> None:
    """Restore the lab, reset esx-02's TPM if it does not attest, wait for a pass, delete ex12."""
    restore_lab(lab)
    if attest_problem(lab) is not None:
        lab.ssh(HOST, TPM_RESET)
        wait_until(lambda: attest_problem(lab), ATTEST_TIMEOUT_S)
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=12,
    slug="attestation",
    title="Measured boot and attestation",
    minutes=15,
    check=check,
    reset=reset,
    destructive=True,
)
