"""Exercise 11, the signed pod kernel: done when pod ex11/tampered was refused on esx-03 with
``KernelVerificationFailed`` (the kernel had been tampered with), the kernel on esx-03 passes its
signature check again, and pod ex11/after, started after the repair, runs there
(docs/exercises/11-signed-kernel.md).

The reset reinstalls the package from the depot whenever the kernel does not verify, the repair
the agent's own refusal message asks for, so no backup copy on the host is needed.
"""

from __future__ import annotations

from nestlab.exercises.base import Exercise, Lab
from nestlab.exercises.common import delete_namespaces, is_running, pod
from nestlab.exercises.ex09_host_failure import restore_lab, timestamp

NAMESPACE = "ex11"
HOST = "esx-03"
KERNEL = "/usr/lib/nestlab/pod-kernel/vmlinux.efi"
DB_CERT = "/etc/nestlab/trust/db.crt"
INTACT = "package-intact"
VERIFY = (  # the kernel's signature, and every file of the package as dpkg installed it (the initramfs too)
    f'sbverify --cert {DB_CERT} {KERNEL} >/dev/null 2>&1 && test -z "$(dpkg --verify nestlab-pod-kernel)" '
    f"&& echo {INTACT} || true"
)
REINSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install --reinstall -y -q nestlab-pod-kernel"


def package_intact(lab: Lab) -> bool:
    """Whether esx-03's pod kernel passes sbverify against the lab's db certificate and every file of
    its package is as installed."""
    return INTACT in lab.ssh(HOST, VERIFY, check=False)


def check(lab: Lab) -> list[str]:
    """What of the refusal, the repair and the launch after it is still missing."""
    missing: list[str] = []
    tampered = pod(lab, NAMESPACE, "tampered")
    if tampered is None:
        missing.append("there is no pod ex11/tampered: tamper with the kernel and start it (steps 5-6)")
    else:
        status = tampered.get("status") or {}
        if status.get("phase") != "Failed" or status.get("reason") != "KernelVerificationFailed":
            missing.append(
                f"pod ex11/tampered was not refused (phase {status.get('phase')}, reason "
                f"{status.get('reason')}): flip the kernel's byte before starting it (steps 5-6)"
            )
    if not package_intact(lab):
        missing.append(
            f"the pod kernel package on {HOST} is not intact (signature or files): reinstall it (step 7)"
        )
    after = pod(lab, NAMESPACE, "after")
    if after is None or not is_running(after) or (after.get("spec") or {}).get("nodeName") != HOST:
        missing.append(f"pod ex11/after is not running on {HOST} (step 8)")
    elif tampered is not None:
        started = timestamp((after.get("metadata") or {}).get("creationTimestamp"))
        refused = timestamp((tampered.get("metadata") or {}).get("creationTimestamp"))
        if started is None or refused is None or started < refused:
            missing.append(
                "pod ex11/after was started before ex11/tampered: start it after the repair (step 8)"
            )
    return missing


def reset(lab: Lab) -> None:
    """Restore the lab, reinstall esx-03's pod kernel package unless intact, delete namespace ex11."""
    restore_lab(lab)
    if not package_intact(lab):
        lab.ssh(HOST, REINSTALL)
    delete_namespaces(lab, NAMESPACE, force=True)


EXERCISE = Exercise(
    number=11,
    slug="signed-kernel",
    title="The signed pod kernel",
    minutes=15,
    check=check,
    reset=reset,
    destructive=True,
)
