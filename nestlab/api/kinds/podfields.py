"""THE table of every upstream pod-spec field and what nestlab does with it, and the check using it.

A pod that asks for a liveness probe or a volume must not run without one and say nothing (issue
13, item 6). Each upstream ``PodSpec`` / ``Container`` field has one row here: ``HONOURED`` (it
works), ``vsphere(reason)`` (refused because a vSphere Pod refuses it, with vSphere's reason),
``NOT_YET`` (refused because nestlab does not implement it yet) or ``ignored(why)`` (accepted on
purpose: upstream is harmless about it too). A row may accept some values (the upstream default,
e.g. ``terminationMessagePolicy: File``) and refuse the others. :func:`check` turns the table into
422 causes for Pods and every pod template; ``python -m nestlab.api.podfieldsdoc`` prints the
markdown table that docs/api.md carries (a unit test keeps them equal).

Paths are relative to the pod spec; ``containers[]`` rows apply to ``initContainers[]`` too (when
``initContainers`` itself is accepted). ONE LINE PER ROW: helpers flip a row from ``NOT_YET`` to
``HONOURED`` in the same change that makes the field work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nestlab.api.kinds import podvolumes
from nestlab.api.status import Cause

Obj = dict[str, Any]


@dataclass(frozen=True)
class Support:
    """What nestlab does with a field: ``kind`` is honoured, vsphere, not-yet or ignored."""

    kind: str
    reason: str = ""


HONOURED = Support("honoured")
NOT_YET = Support("not-yet")


def vsphere(reason: str) -> Support:
    """Refused because vSphere Pods refuse it; ``reason`` is vSphere's."""
    return Support("vsphere", reason)


def ignored(why: str) -> Support:
    """Accepted and not acted on, on purpose; ``why`` says why that is harmless."""
    return Support("ignored", why)


@dataclass(frozen=True)
class Row:
    """One field; ``allowed`` values (the upstream default, usually) pass even when it is refused."""

    path: str
    support: Support
    allowed: tuple[Any, ...] = ()
    note: str = ""
    shown: str = ""
    """What docs/api.md's "Accepted values" column says when a rule, not a value list, decides."""


HOST = "a vSphere Pod is a VM with its own kernel and network stack; it cannot share its ESXi host's"
PRIVILEGED = "a vSphere Pod does not run privileged containers"
HOST_PATH = podvolumes.HOST_PATH_REASON
LINUX = "a vSphere Pod runs a Linux kernel (the CRX); there are no Windows vSphere Pods"
LOG_PODS = podvolumes.LOG_PODS
HOST_PATH_NOTE = (
    "honoured for that path with every volumeMount of it readOnly: true (a read-only virtio-9p"
    " export of the node's directory; narrow it with subPath)"
)
NOT_YET_MSG = "nestlab does not implement this field yet (docs/api.md lists what a pod may use)"
GROUP_ALONE_MSG = "nestlab does not implement runAsGroup without runAsUser yet (set both, or neither)"
# The capabilities a container runtime grants by default (containerd/CRI-O): adding one is a no-op.
DEFAULT_CAPS = (
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "NET_RAW", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
)  # fmt: skip
UNCONFINED = {"type": "Unconfined"}
PVC_NOTE = "network storage reaches a vSphere Pod as a PersistentVolumeClaim"
NO_SELINUX = ignored("the pod VM's kernel has no SELinux; upstream ignores it there too")
WINDOWS_ONLY = ignored("Windows-only; upstream ignores it on Linux nodes")
NO_PREEMPTION = ignored("every pod has priority 0 (no PriorityClass yet), so none preempts another")
SERVICE_LINKS = "no service environment variables are injected yet"
PULL_NOTE = "Always re-resolves the tag at each start of the pod VM (not at a restart inside it)"
OTHER_RESOURCES = "other resource names (ephemeral-storage, hugepages, devices): not yet"
RESOURCE_NAMES = ("cpu", "memory")
EMPTY_DIR_SIZE = "volumes[].emptyDir.sizeLimit"
SIZE_SHOWN = "any, with medium: Memory"
SIZE_NOTE = (
    "medium: Memory: the tmpfs's size (the VM's memory grows by it); on disk (the pod's 256 MiB"
    " ephemeral disk) not yet: upstream's kubelet evicts a pod whose emptyDir outgrows it"
)
SIZE_ON_DISK_MSG = (
    "nestlab does not implement sizeLimit for an emptyDir on disk yet (nothing would enforce it);"
    " it is honoured with medium: Memory, as the tmpfs's size (docs/api.md lists what a pod may use)"
)
SUB_PATH_EXPR_NOTE = (
    "the agent expands $(VAR) but keeps an undefined or empty one as written, where upstream's"
    " kubelet refuses the container (missing value for VAR): subPath instead"
)

# fmt: off
ROWS: tuple[Row, ...] = (
    # --- pod level ---
    Row("activeDeadlineSeconds", HONOURED),
    Row("affinity", HONOURED, note="node affinity, pod affinity and anti-affinity, by the scheduler"),
    Row("automountServiceAccountToken", HONOURED, note="false on the pod or its ServiceAccount: no token"),
    Row("dnsConfig", HONOURED),
    Row("dnsPolicy", HONOURED),
    Row("enableServiceLinks", HONOURED, note="upstream's service link variables (envvars.go)"),
    Row("ephemeralContainers", NOT_YET),
    Row("evictionResponders", NOT_YET),
    Row("hostAliases", HONOURED),
    Row("hostIPC", vsphere(HOST), (False,)),
    Row("hostNetwork", vsphere(HOST), (False,)),
    Row("hostPID", vsphere(HOST), (False,)),
    Row("hostUsers", NOT_YET, (True,)),
    Row("hostname", HONOURED),
    Row("hostnameOverride", NOT_YET),
    Row("imagePullSecrets", NOT_YET),
    Row("initContainers", HONOURED, note="run by pod-init, in order, before the app containers"),
    Row("nodeName", HONOURED),
    Row("nodeSelector", HONOURED),
    Row("os.name", vsphere(LINUX), ("linux",)),
    Row("overhead", NOT_YET),
    Row("preemptionPolicy", NO_PREEMPTION),
    Row("priority", NOT_YET, (0,)),
    Row("priorityClassName", NOT_YET),
    Row("readinessGates", NOT_YET),
    Row("resourceClaims", NOT_YET),
    Row("resources", NOT_YET, note="pod-level resources"),
    Row("restartPolicy", HONOURED),
    Row("runtimeClassName", NOT_YET),
    Row("schedulerName", HONOURED, note="pods naming another scheduler stay Pending, as upstream"),
    Row("schedulingGates", NOT_YET),
    Row("schedulingGroup", NOT_YET),
    Row("securityContext.appArmorProfile", NOT_YET, (UNCONFINED,)),
    Row("securityContext.fsGroup", NOT_YET),
    Row("securityContext.fsGroupChangePolicy", NOT_YET),
    Row("securityContext.runAsGroup", HONOURED, note="with runAsUser (pod or container level)"),
    Row("securityContext.runAsNonRoot", HONOURED),
    Row("securityContext.runAsUser", HONOURED),
    Row("securityContext.seLinuxChangePolicy", NO_SELINUX),
    Row("securityContext.seLinuxOptions", NO_SELINUX),
    Row("securityContext.seccompProfile", NOT_YET, (UNCONFINED,)),
    Row("securityContext.supplementalGroups", NOT_YET),
    Row("securityContext.supplementalGroupsPolicy", NOT_YET),
    Row("securityContext.sysctls", NOT_YET),
    Row("securityContext.windowsOptions", WINDOWS_ONLY),
    Row("serviceAccount", HONOURED, note="deprecated alias of serviceAccountName"),
    Row("serviceAccountName", HONOURED, note="defaults to default; the ServiceAccount must exist"),
    Row("setHostnameAsFQDN", HONOURED),
    Row("shareProcessNamespace", NOT_YET, (False,)),
    Row("subdomain", HONOURED),
    Row("terminationGracePeriodSeconds", HONOURED),
    Row("tolerations", HONOURED),
    Row("topologySpreadConstraints", HONOURED),
    # --- volumes: one row per source ---
    Row("volumes[].awsElasticBlockStore", NOT_YET, note=PVC_NOTE),
    Row("volumes[].azureDisk", NOT_YET, note=PVC_NOTE),
    Row("volumes[].azureFile", NOT_YET, note=PVC_NOTE),
    Row("volumes[].cephfs", NOT_YET, note=PVC_NOTE),
    Row("volumes[].cinder", NOT_YET, note=PVC_NOTE),
    Row("volumes[].configMap", HONOURED),
    Row("volumes[].csi", NOT_YET),
    Row("volumes[].downwardAPI", HONOURED),
    Row("volumes[].emptyDir", HONOURED),
    Row("volumes[].emptyDir.medium", NOT_YET, ("Memory",), note="HugePages: not yet"),
    Row("volumes[].emptyDir.sizeLimit", NOT_YET, note=SIZE_NOTE, shown=SIZE_SHOWN),
    Row("volumes[].ephemeral", NOT_YET),
    Row("volumes[].fc", NOT_YET, note=PVC_NOTE),
    Row("volumes[].flexVolume", NOT_YET, note=PVC_NOTE),
    Row("volumes[].flocker", NOT_YET, note=PVC_NOTE),
    Row("volumes[].gcePersistentDisk", NOT_YET, note=PVC_NOTE),
    Row("volumes[].gitRepo", NOT_YET, note="deprecated upstream: clone into an emptyDir"),
    Row("volumes[].glusterfs", NOT_YET, note=PVC_NOTE),
    Row("volumes[].hostPath", vsphere(HOST_PATH), ({"path": LOG_PODS},), note=HOST_PATH_NOTE),
    Row("volumes[].image", NOT_YET),
    Row("volumes[].iscsi", NOT_YET, note=PVC_NOTE),
    Row("volumes[].nfs", NOT_YET, note=PVC_NOTE),
    Row("volumes[].persistentVolumeClaim", HONOURED, note="a lab datastore volume, virtio-blk over NBD"),
    Row("volumes[].photonPersistentDisk", NOT_YET, note=PVC_NOTE),
    Row("volumes[].portworxVolume", NOT_YET, note=PVC_NOTE),
    Row("volumes[].projected", HONOURED),
    Row("volumes[].projected.sources[].clusterTrustBundle", NOT_YET),
    Row("volumes[].projected.sources[].podCertificate", NOT_YET),
    Row("volumes[].projected.sources[].serviceAccountToken", HONOURED, note="refreshed at 80 % of its life"),
    Row("volumes[].quobyte", NOT_YET, note=PVC_NOTE),
    Row("volumes[].rbd", NOT_YET, note=PVC_NOTE),
    Row("volumes[].scaleIO", NOT_YET, note=PVC_NOTE),
    Row("volumes[].secret", HONOURED),
    Row("volumes[].storageos", NOT_YET, note=PVC_NOTE),
    Row("volumes[].vsphereVolume", NOT_YET, note=PVC_NOTE),
    # --- containers (initContainers too) ---
    Row("containers[].args", HONOURED),
    Row("containers[].command", HONOURED),
    Row("containers[].env[].name", HONOURED),
    Row("containers[].env[].value", HONOURED),
    Row("containers[].env[].valueFrom.configMapKeyRef", HONOURED),
    Row("containers[].env[].valueFrom.fieldRef", HONOURED),
    Row("containers[].env[].valueFrom.fileKeyRef", NOT_YET),
    Row("containers[].env[].valueFrom.resourceFieldRef", HONOURED),
    Row("containers[].env[].valueFrom.secretKeyRef", HONOURED),
    Row("containers[].envFrom", HONOURED),
    Row("containers[].image", HONOURED),
    Row("containers[].imagePullPolicy", HONOURED, note=PULL_NOTE),
    Row("containers[].lifecycle.postStart", HONOURED),
    Row("containers[].lifecycle.postStart.httpGet.host", NOT_YET, note="the pod IP is called"),
    Row("containers[].lifecycle.postStart.httpGet.scheme", NOT_YET, ("HTTP",)),
    Row("containers[].lifecycle.postStart.sleep", NOT_YET),
    Row("containers[].lifecycle.postStart.tcpSocket", NOT_YET, note="upstream never runs it either"),
    Row("containers[].lifecycle.preStop", HONOURED),
    Row("containers[].lifecycle.preStop.httpGet.host", NOT_YET, note="the pod IP is called"),
    Row("containers[].lifecycle.preStop.httpGet.scheme", NOT_YET, ("HTTP",)),
    Row("containers[].lifecycle.preStop.sleep", NOT_YET),
    Row("containers[].lifecycle.preStop.tcpSocket", NOT_YET, note="upstream never runs it either"),
    Row("containers[].lifecycle.stopSignal", NOT_YET),
    Row("containers[].livenessProbe", HONOURED, note="run by pod-init inside the VM"),
    Row("containers[].livenessProbe.grpc", NOT_YET),
    Row("containers[].livenessProbe.httpGet.host", NOT_YET, note="the pod IP is probed"),
    Row("containers[].livenessProbe.httpGet.scheme", NOT_YET, ("HTTP",)),
    Row("containers[].livenessProbe.terminationGracePeriodSeconds", NOT_YET),
    Row("containers[].name", HONOURED),
    Row("containers[].ports[].containerPort", HONOURED, note="Services resolve it"),
    Row("containers[].ports[].hostIP", vsphere(HOST)),
    Row("containers[].ports[].hostPort", vsphere(HOST), (0,)),
    Row("containers[].ports[].name", HONOURED),
    Row("containers[].ports[].protocol", HONOURED),
    Row("containers[].readinessProbe", HONOURED, note="run by pod-init inside the VM"),
    Row("containers[].readinessProbe.grpc", NOT_YET),
    Row("containers[].readinessProbe.httpGet.host", NOT_YET, note="the pod IP is probed"),
    Row("containers[].readinessProbe.httpGet.scheme", NOT_YET, ("HTTP",)),
    Row("containers[].readinessProbe.terminationGracePeriodSeconds", NOT_YET),
    Row("containers[].resizePolicy", NOT_YET),
    Row("containers[].resources.claims", NOT_YET),
    Row("containers[].resources.limits", HONOURED, note="cpu and memory size the pod VM; " + OTHER_RESOURCES),
    Row("containers[].resources.requests", HONOURED, note="cpu and memory: scheduling; " + OTHER_RESOURCES),
    Row("containers[].restartPolicy", NOT_YET, note="sidecar init containers"),
    Row("containers[].restartPolicyRules", NOT_YET),
    Row("containers[].securityContext.allowPrivilegeEscalation", NOT_YET, (True,)),
    Row("containers[].securityContext.appArmorProfile", NOT_YET, (UNCONFINED,)),
    Row("containers[].securityContext.capabilities.add", vsphere(PRIVILEGED), DEFAULT_CAPS),
    Row("containers[].securityContext.capabilities.drop", NOT_YET),
    Row("containers[].securityContext.privileged", vsphere(PRIVILEGED), (False,)),
    Row("containers[].securityContext.procMount", NOT_YET, ("Default",)),
    Row("containers[].securityContext.readOnlyRootFilesystem", NOT_YET, (False,)),
    Row("containers[].securityContext.runAsGroup", HONOURED, note="with runAsUser (pod or container level)"),
    Row("containers[].securityContext.runAsNonRoot", HONOURED),
    Row("containers[].securityContext.runAsUser", HONOURED),
    Row("containers[].securityContext.seLinuxOptions", NO_SELINUX),
    Row("containers[].securityContext.seccompProfile", NOT_YET, (UNCONFINED,)),
    Row("containers[].securityContext.windowsOptions", WINDOWS_ONLY),
    Row("containers[].startupProbe", HONOURED, note="run by pod-init inside the VM"),
    Row("containers[].startupProbe.grpc", NOT_YET),
    Row("containers[].startupProbe.httpGet.host", NOT_YET, note="the pod IP is probed"),
    Row("containers[].startupProbe.httpGet.scheme", NOT_YET, ("HTTP",)),
    Row("containers[].startupProbe.terminationGracePeriodSeconds", NOT_YET),
    Row("containers[].stdin", HONOURED),
    Row("containers[].stdinOnce", HONOURED),
    Row("containers[].terminationMessagePath", NOT_YET, ("/dev/termination-log",)),
    Row("containers[].terminationMessagePolicy", NOT_YET, ("File",)),
    Row("containers[].tty", HONOURED),
    Row("containers[].volumeDevices", NOT_YET),
    Row("containers[].volumeMounts", HONOURED),
    Row("containers[].volumeMounts[].mountPropagation", NOT_YET, ("None",)),
    Row("containers[].volumeMounts[].recursiveReadOnly", NOT_YET, ("Disabled",)),
    Row("containers[].volumeMounts[].subPathExpr", NOT_YET, note=SUB_PATH_EXPR_NOTE),
    Row("containers[].workingDir", HONOURED),
)
# fmt: on

FORBIDDEN = "FieldValueForbidden"
_UNSET: tuple[Any, ...] = (None, "", [])  # not {}: `emptyDir: {}` asks for a volume


def _is_unset(value: Any) -> bool:
    return any(type(value) is type(u) and value == u for u in _UNSET)


def _is_allowed(value: Any, allowed: tuple[Any, ...]) -> bool:
    """Strict equality (``True`` is not ``1``); a list passes when each of its items does."""
    if isinstance(value, list):
        return all(_is_allowed(item, allowed) for item in value)
    return any(type(value) is type(a) and value == a for a in allowed)


def _values(node: Any, parts: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    """Each (field path, value) that ``parts`` (``a[]``, ``b``...) reaches from ``node``."""
    if not parts:
        yield where, node
        return
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    name = head.removesuffix("[]")
    value = node.get(name)
    if not head.endswith("[]"):
        yield from _values(value, rest, f"{where}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _values(item, rest, f"{where}.{name}[{index}]")


def _refusal(row: Row, value: Any) -> str:
    if row.support.kind == "vsphere":
        extra = [v for v in value if not _is_allowed(v, row.allowed)] if isinstance(value, list) else []
        named = f" ({', '.join(str(v) for v in extra)})" if extra and row.allowed else ""
        return f"Forbidden: {row.support.reason}{named}"
    if row.allowed:
        return f"Forbidden: nestlab does not implement this field yet, beyond {_shown(row.allowed)} " + (
            "(docs/api.md lists what a pod may use)"
        )
    return f"Forbidden: {NOT_YET_MSG}"


def _shown(allowed: tuple[Any, ...]) -> str:
    if allowed == DEFAULT_CAPS:
        return "the runtime's default capabilities"
    return " or ".join(_text(a) for a in allowed)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _refused(row: Row, value: Any) -> bool:
    return row.support.kind in ("vsphere", "not-yet") and not (
        _is_unset(value) or _is_allowed(value, row.allowed)
    )


def _run_as_group(spec: Obj, path: str, lists: tuple[str, ...]) -> list[Cause]:
    """runAsGroup is honoured only with a runAsUser (the agent keeps the image's user otherwise)."""
    pod: Obj = spec["securityContext"] if isinstance(spec.get("securityContext"), dict) else {}
    causes: list[Cause] = []
    for name in lists:
        for index, container in enumerate(spec.get(name) or []):
            found = container.get("securityContext") if isinstance(container, dict) else None
            own: Obj = found if isinstance(found, dict) else {}
            context = {**pod, **own}
            if context.get("runAsGroup") is None or context.get("runAsUser") is not None:
                continue
            where = (
                f"{path}.{name}[{index}].securityContext.runAsGroup"
                if own.get("runAsGroup") is not None
                else f"{path}.securityContext.runAsGroup"
            )
            causes.append(Cause(where, f"Forbidden: {GROUP_ALONE_MSG}", FORBIDDEN))
    return causes


def _may_refuse(row: Row) -> bool:
    """Whether ``row`` can give a cause: refused kinds and the two paths with rules of their own."""
    special = row.path == "volumes[].hostPath" or row.path.endswith(
        ("resources.limits", "resources.requests")
    )
    return special or row.support.kind in ("vsphere", "not-yet")


# The rows check() walks: (row, its path split, a containers[] row?, the key that must be present,
# in the spec or in a container, for the row to find anything). Every pod create, update and status
# write validates the spec: splitting every path and walking the ~100 honoured rows was its cost.
_WALKS: tuple[tuple[Row, tuple[str, ...], bool, str], ...] = tuple(
    (row, parts, each, parts[min(int(each), len(parts) - 1)].removesuffix("[]"))
    for row in ROWS
    if _may_refuse(row) and row.path != EMPTY_DIR_SIZE  # decided with its medium: _disk_size_limits
    for parts, each in [(tuple(row.path.split(".")), row.path.startswith("containers[]"))]
)
_INIT_CONTAINERS = next(row for row in ROWS if row.path == "initContainers")


def check(spec: Any, path: str = "spec") -> list[Cause]:
    """One 422 cause per refused field of the pod spec at ``path`` (Pod or pod template)."""
    if not isinstance(spec, dict):
        return []
    lists: tuple[str, ...] = ("containers",)
    if not _refused(_INIT_CONTAINERS, spec.get("initContainers")):
        lists += ("initContainers",)
    present = set(spec)
    in_containers: set[str] = set()
    for name in lists:
        listed = spec.get(name)
        for container in listed if isinstance(listed, list) else []:
            in_containers.update(container if isinstance(container, dict) else ())
    causes: list[Cause] = []
    for row, parts, each, key in _WALKS:
        if key not in (in_containers if each else present):
            continue  # nothing there to refuse: most rows, for most pods
        targets = [(parts[0].replace("containers", n, 1), *parts[1:]) for n in lists] if each else [parts]
        for target in targets:
            for where, value in _values(spec, target, path):
                if row.path == "volumes[].hostPath" and not _is_unset(value):
                    causes += podvolumes.host_path_source(value, where)
                elif row.path.endswith(("resources.limits", "resources.requests")) and isinstance(
                    value, dict
                ):
                    causes += [
                        Cause(f"{where}[{name}]", f"Forbidden: {NOT_YET_MSG}", FORBIDDEN)
                        for name in value
                        if name not in RESOURCE_NAMES
                    ]
                elif _refused(row, value):
                    causes.append(Cause(where, _refusal(row, value), FORBIDDEN))
    causes += podvolumes.host_path_mounts(spec, path, lists)
    causes += _disk_size_limits(spec, path)
    unique = {cause.field: cause for cause in causes + _run_as_group(spec, path, lists)}
    return list(unique.values())


def _disk_size_limits(spec: Obj, path: str) -> list[Cause]:
    """A cause for each emptyDir ``sizeLimit`` on disk: only ``medium: Memory`` honours it (a tmpfs of
    that size); nothing would enforce it on the ephemeral disk, and accepting it silently is what
    issue 13 forbids."""
    causes = []
    volumes = spec.get("volumes")
    for index, volume in enumerate(volumes if isinstance(volumes, list) else []):
        empty = volume.get("emptyDir") if isinstance(volume, dict) else None
        if not isinstance(empty, dict) or _is_unset(empty.get("sizeLimit")):
            continue
        if empty.get("medium") != "Memory":
            where = f"{path}.volumes[{index}].emptyDir.sizeLimit"
            causes.append(Cause(where, f"Forbidden: {SIZE_ON_DISK_MSG}", FORBIDDEN))
    return causes


_SUPPORT_TEXT = {
    "honoured": "honoured",
    "vsphere": "refused (vSphere)",
    "not-yet": "refused (not yet)",
    "ignored": "ignored",
}


def markdown() -> str:
    """The docs/api.md table: every row, its support, the values it accepts and why."""
    lines = [
        "| Field (in the pod spec) | nestlab | Accepted values | Why / notes |",
        "|---|---|---|---|",
    ]
    for row in ROWS:
        accepted = "any" if row.support.kind in ("honoured", "ignored") else "none (unset)"
        accepted = _shown(row.allowed) if row.allowed else accepted
        accepted = row.shown or accepted
        why = "; ".join(part for part in (row.support.reason, row.note) if part)
        support = _SUPPORT_TEXT[row.support.kind]
        if (row.allowed or row.shown) and row.support.kind == "not-yet":
            support = "not yet: accepted values only"
        lines.append(f"| `{row.path}` | {support} | {accepted} | {why} |")
    return "\n".join(lines) + "\n"
