"""From a Kubernetes Pod object to what the runtime runs: pure checks and translation.

The agent admits a pod the way the kubelet does (its requests must fit in what the node has left,
or the pod fails with ``OutOfcpu``/``OutOfmemory``), resolves each container's command from the
pod spec and the image config (``command`` replaces the entrypoint, ``args`` the image's cmd),
and gives every distinct image one disk serial derived from its manifest digest. The pod's names
(hostname, resolv.conf, hosts) are formed by :mod:`nestlab.agent.poddns` once its address is known
(:func:`with_names`). Every refusal is a :class:`PodRejected` with the status reason the kubelet
would use.

The environment (:mod:`nestlab.agent.podenv`) and volumes (:mod:`nestlab.agent.podvolumes`) are
formed in :func:`description` from the ConfigMaps, Secrets and Services the agent fetched; one
that is missing is a :class:`WaitingForMount` (volumes, checked first as the kubelet mounts before
it creates containers) or a :class:`WaitingForConfig` (env): the agent reports it and tries again.
PersistentVolumeClaims become block volumes through :func:`claim_volumes` (:mod:`nestlab.agent.pvattach`),
which waits the same way until each claim is bound and its volume attached to this node.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, NewType

from nestlab.agent import poddns, podenv, podprobes, podvolumes, pvattach
from nestlab.agent.images import Image
from nestlab.agent.registry import ImageRef, InvalidImageNameError, parse_ref
from nestlab.api import quantity
from nestlab.errors import UsageError
from nestlab.runtime import poddesc, qemu
from nestlab.runtime.poddesc import Container, ContainerName, DiskSerial, PodDescription, RestartPolicy

Obj = dict[str, Any]
PodUID = NewType("PodUID", str)
MIB = Decimal(1024 * 1024)
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DEFAULT_GRACE_S = 30  # the Kubernetes default terminationGracePeriodSeconds


class PodRejected(UsageError):  # noqa: N818 - named after the kubelet's admission verdict
    """The pod cannot run on this node; ``reason`` goes into its status and Event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WaitingForMount(PodRejected):
    """A volume's ConfigMap, Secret or claim is not there yet: the pod stays ContainerCreating, with
    an Event of ``reason`` (FailedMount)."""

    def __init__(
        self, volume: str, message: str, reason: str = "FailedMount", retry_s: float | None = None
    ) -> None:
        super().__init__(reason, message)
        self.volume = volume
        self.retry_s = retry_s
        """How soon to look again; None: the agent's usual back-off."""


class WaitingForConfig(PodRejected):
    """A container's env names a missing ConfigMap, Secret or key: it waits (CreateContainerConfigError)."""

    def __init__(self, container: str, message: str) -> None:
        super().__init__("CreateContainerConfigError", message)
        self.container = container


@dataclass(frozen=True)
class ContainerPlan:
    """One container as the pod spec asks for it (before its image is known)."""

    name: ContainerName
    image: ImageRef
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...]
    working_dir: str | None
    user: tuple[int, int] | None
    resources: qemu.ContainerResources
    spec: Obj = field(default_factory=dict, compare=False)
    """The container as the pod spec gives it (env, envFrom and volumeMounts are formed from it)."""


@dataclass(frozen=True)
class PodPlan:
    """What the agent will run for one pod."""

    namespace: str
    name: str
    uid: PodUID
    containers: tuple[ContainerPlan, ...]
    restart_policy: RestartPolicy
    grace_s: int
    cpu_m: int
    """Requested millicores (what admission counts)."""
    memory_mib: int
    """Requested MiB."""
    dns: poddns.PodDnsSpec
    """The fields that decide the pod's hostname, resolv.conf and hosts file."""
    init_containers: tuple[ContainerPlan, ...] = ()
    """``spec.initContainers``: pod-init runs them first, in order, each to success."""
    pod: Obj = field(default_factory=dict, compare=False)
    """The Pod object (fieldRefs, volumes)."""
    tmpfs_mib: int = 0
    """``medium: Memory`` emptyDirs: the pod VM's memory grows by this much."""


def _amount(resources: Obj, kind: str, name: str, scale: Decimal, where: str) -> int | None:
    value = (resources.get(kind) or {}).get(name)
    if value is None:
        return None
    try:
        return int(quantity.parse(value) * scale / (MIB if name == "memory" else 1))
    except (quantity.QuantityError, ArithmeticError) as exc:
        raise PodRejected("CreateContainerConfigError", f"{where}.resources.{kind}.{name}: {exc}") from exc


def _user(spec: Obj, container: Obj) -> tuple[int, int] | None:
    context = {**(spec.get("securityContext") or {}), **(container.get("securityContext") or {})}
    uid, gid = context.get("runAsUser"), context.get("runAsGroup")
    if uid is None:
        return None
    return int(uid), int(gid if gid is not None else uid)


def _container(spec: Obj, c: Obj, index: int, registry: str) -> ContainerPlan:
    where = f"spec.containers[{index}]"
    name = str(c.get("name", ""))
    if not _DNS_LABEL.match(name):
        raise PodRejected("CreateContainerConfigError", f"{where}.name {name!r} is not a DNS label")
    try:
        image = parse_ref(str(c.get("image", "")), registry)
    except InvalidImageNameError as exc:
        raise PodRejected("InvalidImageName", str(exc)) from exc
    env = [
        (str(i.get("name")), str(i.get("value", ""))) for i in c.get("env") or [] if not i.get("valueFrom")
    ]
    res = c.get("resources") or {}
    resources = qemu.ContainerResources(
        cpu_request_m=_amount(res, "requests", "cpu", Decimal(1000), where),
        cpu_limit_m=_amount(res, "limits", "cpu", Decimal(1000), where),
        memory_request_mib=_amount(res, "requests", "memory", Decimal(1), where),
        memory_limit_mib=_amount(res, "limits", "memory", Decimal(1), where),
    )
    command, args = c.get("command"), c.get("args")
    return ContainerPlan(
        name=ContainerName(name),
        image=image,
        command=None if command is None else tuple(str(a) for a in command),
        args=None if args is None else tuple(str(a) for a in args),
        env=tuple(env),
        working_dir=c.get("workingDir"),
        user=_user(spec, c),
        resources=resources,
        spec=c,
    )


def plan(pod: Obj, registry: str) -> PodPlan:
    """Check and translate ``pod``; PodRejected names what is wrong."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    containers = tuple(_container(spec, c, i, registry) for i, c in enumerate(spec.get("containers") or []))
    if not containers:
        raise PodRejected("CreateContainerConfigError", "spec.containers is empty")
    restart = str(spec.get("restartPolicy") or "Always")
    if restart not in ("Always", "OnFailure", "Never"):
        raise PodRejected("CreateContainerConfigError", f"spec.restartPolicy {restart!r} is not supported")
    if spec.get("hostNetwork"):  # ClusterFirstWithHostNet is ClusterFirst because of this
        raise PodRejected(
            "CreateContainerConfigError",
            "spec.hostNetwork: a vSphere Pod is a VM with its own network stack; it cannot use its host's",
        )
    try:
        dns = poddns.spec_of(pod)
    except poddns.PodDnsError as exc:
        raise PodRejected("CreateContainerConfigError", str(exc)) from exc
    grace = spec.get("terminationGracePeriodSeconds")
    try:
        tmpfs = podvolumes.tmpfs_mib(pod)
    except podvolumes.VolumeError as exc:
        raise PodRejected(exc.reason, str(exc)) from exc
    return PodPlan(
        namespace=str(meta.get("namespace", "default")),
        name=str(meta.get("name", "")),
        uid=PodUID(str(meta.get("uid", ""))),
        containers=containers,
        restart_policy=restart,  # type: ignore[arg-type]  # checked just above
        grace_s=DEFAULT_GRACE_S if grace is None else int(grace),
        cpu_m=sum(c.resources.cpu_request_m or 0 for c in containers),
        memory_mib=sum(c.resources.memory_request_mib or 0 for c in containers),
        dns=dns,
        init_containers=tuple(
            _container(spec, c, i, registry) for i, c in enumerate(spec.get("initContainers") or [])
        ),
        pod=pod,
        tmpfs_mib=tmpfs,
    )


def vm_memory_mib(p: PodPlan) -> int:
    """The pod VM's memory: its containers' (as :func:`qemu.size` sizes it) plus its tmpfs volumes."""
    return qemu.size(vm_resources(p))[1]


def vm_resources(p: PodPlan) -> list[qemu.ContainerResources]:
    """What the launcher sizes the VM from: the containers, and the tmpfs volumes as one more
    memory limit (tmpfs pages are the guest's memory, so the VM grows by them)."""
    extra = [qemu.ContainerResources(memory_limit_mib=p.tmpfs_mib)] if p.tmpfs_mib else []
    return [c.resources for c in p.containers] + extra


def admit(p: PodPlan, free_cpu_m: int, free_memory_mib: int) -> None:
    """The kubelet's admission: requests and the VM itself must fit in what is free."""
    guest_mib = vm_memory_mib(p)
    if p.cpu_m > free_cpu_m:
        raise PodRejected(
            "OutOfcpu", f"Node didn't have enough resource: cpu, requested: {p.cpu_m}m, free: {free_cpu_m}m"
        )
    need = max(p.memory_mib, guest_mib)
    if need > free_memory_mib:
        raise PodRejected(
            "OutOfmemory",
            f"Node didn't have enough resource: memory, requested: {need}Mi (the pod VM), "
            f"free: {free_memory_mib}Mi",
        )


def serial_of(image: Image) -> DiskSerial:
    """The disk serial of an image: ``img-`` and 16 hex digits of its digest (serials max 20 bytes)."""
    return DiskSerial("img-" + image.digest.removeprefix("sha256:")[:16])


def vm_name(p: PodPlan) -> str:
    """A DNS label naming the pod VM (and the guest's hostname): the pod name when it is one."""
    if _DNS_LABEL.match(p.name):
        return p.name
    cleaned = re.sub(r"[^a-z0-9-]", "-", p.name.lower())[:50].strip("-")
    return f"{cleaned or 'pod'}-{p.uid[:8]}"


def _numeric_user(text: str, where: str) -> tuple[int, int]:
    uid, _, gid = text.partition(":")
    if not uid.isdigit() or (gid and not gid.isdigit()):
        raise PodRejected(
            "CreateContainerConfigError", f"{where}: image user {text!r} is not numeric uid[:gid]"
        )
    return int(uid), int(gid or uid)


def claim_volumes(pod: Obj, node: str, found: pvattach.ClaimObjects) -> tuple[poddesc.Volume, ...]:
    """The pod's PersistentVolumeClaims as block volumes (:mod:`nestlab.agent.pvattach`), or
    WaitingForMount (FailedMount) while a claim is unbound or its volume not attached here."""
    claimed = pvattach.resolve(pod, node, found.pvcs, found.pvs, found.attachments)
    if isinstance(claimed, pvattach.Waiting):
        raise WaitingForMount("", claimed.message, claimed.reason, pvattach.RETRY_S)
    return claimed


def _volumes(
    p: PodPlan, sources: podenv.Sources, claimed: tuple[poddesc.Volume, ...]
) -> tuple[poddesc.Volume, ...]:
    try:
        formed = {v.name: v for v in (*podvolumes.volumes(pvattach.without_claims(p.pod), sources), *claimed)}
    except podvolumes.MissingVolumeSource as exc:
        raise WaitingForMount(exc.volume, str(exc)) from exc
    except podenv.EnvError as exc:
        raise PodRejected(exc.reason, str(exc)) from exc
    for name in pvattach.claims(p.pod):
        if name not in formed:
            raise WaitingForMount(name, f'volume "{name}": its PersistentVolumeClaim is not attached yet')
    return tuple(formed[str(v.get("name", ""))] for v in (p.pod.get("spec") or {}).get("volumes") or [])


def _env(p: PodPlan, c: ContainerPlan, sources: podenv.Sources) -> podenv.ContainerEnv:
    if not c.spec:  # a plan made without its pod spec (tests): the plain values
        return podenv.ContainerEnv(c.env)
    try:
        return podenv.container_env(p.pod, c.spec, sources)
    except podenv.MissingSource as exc:
        raise WaitingForConfig(c.name, str(exc)) from exc
    except podenv.EnvError as exc:
        raise PodRejected(exc.reason, f"container {c.name}: {exc}") from exc


def env_warnings(p: PodPlan, sources: podenv.Sources) -> list[str]:
    """The kubelet's ``InvalidEnvironmentVariableNames`` Event messages for ``p``'s envFrom sources."""
    return [w for c in p.containers for w in _env(p, c, sources).invalid_names]


def description(
    p: PodPlan,
    images: Mapping[ContainerName, Image],
    sources: podenv.Sources | None = None,
    claimed: tuple[poddesc.Volume, ...] = (),
) -> PodDescription:
    """The runtime's pod description: environment and volumes formed from ``sources`` (the objects
    the agent fetched) and ``claimed`` (:func:`claim_volumes`), commands ``$(VAR)``-expanded and
    resolved against each image's config."""
    sources = sources or podenv.Sources()
    volumes = _volumes(p, sources, claimed)
    containers = []
    for index, c in enumerate((*p.init_containers, *p.containers)):  # init first: pod-init's order
        config = images[c.name].config
        formed = _env(p, c, sources)
        own = dict(formed.env)
        command = None if c.command is None else podenv.expand_command(c.command, own)
        args = None if c.args is None else podenv.expand_command(c.args, own)
        if command is not None:
            argv = command + (args or ())
        elif args is not None:
            argv = config.entrypoint + args
        else:
            argv = config.entrypoint + config.cmd
        if not argv:
            raise PodRejected(
                "CreateContainerError", f"container {c.name}: no command specified (none in the image either)"
            )
        env = dict(config.env)
        env.update(own)
        try:
            mounts = podvolumes.mounts(p.pod, c.spec, f"spec.containers[{index}]", own) if c.spec else ()
            mounts = pvattach.read_only_mounts(mounts, volumes, p.pod)
        except podenv.EnvError as exc:
            raise PodRejected(exc.reason, str(exc)) from exc
        user = (
            c.user
            if c.user is not None
            else _numeric_user(config.user, f"container {c.name}")
            if config.user
            else (0, 0)
        )
        containers.append(
            Container(
                name=c.name,
                image=serial_of(images[c.name]),
                args=argv,
                env=tuple(env.items()),
                working_dir=c.working_dir or config.working_dir or "/",
                user=user,
                mounts=mounts,
                stdin=bool((c.spec or {}).get("stdin")),
                stdin_once=bool((c.spec or {}).get("stdinOnce")),
                tty=bool((c.spec or {}).get("tty")),
            )
        )
    return podprobes.attach(  # probes, hooks, init containers, activeDeadlineSeconds
        PodDescription(
            name=vm_name(p),
            containers=tuple(containers),
            restart_policy=p.restart_policy,
            grace_s=p.grace_s,
            volumes=volumes,
        ),
        p.pod,
    )


def with_names(
    desc: PodDescription,
    p: PodPlan,
    cluster: poddns.ClusterDns,
    host: poddns.ResolvConf | None,
    pod_ip: str | None,
) -> tuple[PodDescription, tuple[poddns.DnsWarning, ...]]:
    """``desc`` with the pod's hostname, resolv.conf and hosts file (and the kubelet's warnings about
    them); ``host`` is the node's resolver configuration, ``pod_ip`` None for a pod without network."""
    try:
        names = poddns.pod_names(p.dns, cluster, host, pod_ip)
    except poddns.PodDnsError as exc:
        raise PodRejected("CreateContainerConfigError", str(exc)) from exc
    named = dataclasses.replace(
        desc, hostname=names.hostname, resolv_conf=names.resolv_conf, hosts=names.hosts
    )
    return named, names.warnings
