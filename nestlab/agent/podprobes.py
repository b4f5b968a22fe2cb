"""Probes, lifecycle hooks, init containers and activeDeadlineSeconds: from the pod spec to pod-init.

vSphere runs container health inside the pod (the Spherelet Agent), so the agent only translates:
each container's ``livenessProbe``/``readinessProbe``/``startupProbe`` and ``lifecycle.postStart``/
``preStop`` become :class:`~nestlab.runtime.poddesc.Probe` and :class:`~nestlab.runtime.poddesc.Action`
values with the API's defaults filled in and named ports resolved against the container's
``ports`` (as the kubelet does), init containers are flagged to run first and in order, and the
pod's ``activeDeadlineSeconds`` becomes the seconds it has left. Pure: no I/O, no clock unless
given one. What pod-init cannot do (HTTPS, gRPC, a host name it would have to resolve) is a
:class:`LifecycleError` naming the field.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

from nestlab.errors import UsageError
from nestlab.runtime import control
from nestlab.runtime.poddesc import Action, Container, PodDescription, Probe, ProbeKind

Obj = dict[str, Any]
PROBES: tuple[tuple[str, ProbeKind], ...] = (
    ("startupProbe", "startup"),
    ("livenessProbe", "liveness"),
    ("readinessProbe", "readiness"),
)
DEFAULTS = {  # the API's defaults for a probe's timing fields
    "initialDelaySeconds": 0,
    "periodSeconds": 10,
    "timeoutSeconds": 1,
    "successThreshold": 1,
    "failureThreshold": 3,
}
_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
DEADLINE_EXCEEDED = "Pod was active on the node longer than the specified deadline"
"""The kubelet's status message (and Event) for a pod past its activeDeadlineSeconds."""


class LifecycleError(UsageError):
    """A probe or hook pod-init cannot run; the message names the field."""

    reason = "CreateContainerConfigError"


def port_of(value: object, container: Obj, where: str) -> int:
    """A probe's or hook's port: a number, or the name of one of the container's ``ports``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isdigit():
        number = int(value)
    elif isinstance(value, str) and value:
        named = [p for p in container.get("ports") or [] if p.get("name") == value]
        if not named:
            raise LifecycleError(f"{where}.port: the container has no port named {value!r}")
        number = int(named[0].get("containerPort", 0))
    else:
        raise LifecycleError(f"{where}.port is required")
    if not 1 <= number <= 65535:
        raise LifecycleError(f"{where}.port: {number} must be between 1 and 65535")
    return number


def _host(handler: Obj, where: str) -> str:
    host = str(handler.get("host") or "")
    if host and not _IPV4.match(host):
        raise LifecycleError(f"{where}.host: {host!r}: pod-init connects to IPv4 addresses only")
    return host


def action_of(handler: Obj, container: Obj, where: str) -> Action:
    """One handler (``exec``, ``httpGet`` or ``tcpSocket``) as pod-init runs it."""
    if "exec" in handler:
        command = tuple(str(w) for w in (handler["exec"] or {}).get("command") or [])
        if not command:
            raise LifecycleError(f"{where}.exec.command must not be empty")
        return Action("exec", command)
    if "httpGet" in handler:
        get, at = handler["httpGet"] or {}, f"{where}.httpGet"
        if str(get.get("scheme") or "HTTP").upper() != "HTTP":
            raise LifecycleError(f"{at}.scheme: pod-init probes over HTTP only (HTTPS is not implemented)")
        path = str(get.get("path") or "/")
        headers = tuple(
            (str(h.get("name", "")), str(h.get("value", ""))) for h in get.get("httpHeaders") or []
        )
        return Action(
            "http",
            host=_host(get, at),
            port=port_of(get.get("port"), container, at),
            path=path if path.startswith("/") else "/" + path,
            headers=headers,
        )
    if "tcpSocket" in handler:
        tcp, at = handler["tcpSocket"] or {}, f"{where}.tcpSocket"
        return Action("tcp", host=_host(tcp, at), port=port_of(tcp.get("port"), container, at))
    for other in ("grpc", "sleep"):
        if other in handler:
            raise LifecycleError(f"{where}.{other}: not implemented in nestlab's pod-init")
    raise LifecycleError(f"{where}: must specify exactly one of exec, httpGet or tcpSocket")


def probe_of(kind: ProbeKind, spec: Obj, container: Obj, where: str) -> Probe:
    """A probe with the API's defaults filled in."""
    if spec.get("terminationGracePeriodSeconds") is not None:
        raise LifecycleError(f"{where}.terminationGracePeriodSeconds: not implemented (the pod's applies)")
    timing = {name: int(spec[name]) if spec.get(name) is not None else d for name, d in DEFAULTS.items()}
    return Probe(
        kind,
        action_of(spec, container, where),
        initial_delay_s=timing["initialDelaySeconds"],
        period_s=timing["periodSeconds"],
        timeout_s=timing["timeoutSeconds"],
        success_threshold=timing["successThreshold"],
        failure_threshold=timing["failureThreshold"],
    )


def _with_lifecycle(c: Container, spec: Obj, where: str) -> Container:
    probes = tuple(
        probe_of(kind, spec[field], spec, f"{where}.{field}") for field, kind in PROBES if spec.get(field)
    )
    hooks = spec.get("lifecycle") or {}
    post, pre = hooks.get("postStart"), hooks.get("preStop")
    for name, hook in (("postStart", post), ("preStop", pre)):
        if hook and "tcpSocket" in hook:  # accepted by the API for compatibility; the kubelet fails it
            raise LifecycleError(f"{where}.lifecycle.{name}.tcpSocket: not supported as a lifecycle handler")
    return dataclasses.replace(
        c,
        probes=probes,
        post_start=action_of(post, spec, f"{where}.lifecycle.postStart") if post else None,
        pre_stop=action_of(pre, spec, f"{where}.lifecycle.preStop") if pre else None,
    )


def deadline_left(pod: Obj, now: datetime | None = None) -> int | None:
    """Seconds of ``activeDeadlineSeconds`` left, counted from ``status.startTime`` (the kubelet's
    clock; a pod not yet started has all of it); None without a deadline, <= 0 once exceeded."""
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    if deadline is None:
        return None
    started = (pod.get("status") or {}).get("startTime")
    if not started:
        return int(deadline)
    begun = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    elapsed = ((now or datetime.now(UTC)) - begun).total_seconds()
    return int(deadline - max(elapsed, 0))


def attach(desc: PodDescription, pod: Obj, now: datetime | None = None) -> PodDescription:
    """``desc`` with the pod's probes, hooks, init-container order and deadline.

    Containers of ``desc`` named in ``spec.initContainers`` are flagged init (pod-init runs them in
    the description's order, so they must come first); the others get their probes and hooks.
    """
    spec = pod.get("spec") or {}
    init = {str(c.get("name")): c for c in spec.get("initContainers") or []}
    apps = {str(c.get("name")): (i, c) for i, c in enumerate(spec.get("containers") or [])}
    containers = []
    for c in desc.containers:
        if c.name in init:
            if any(init[c.name].get(f) for f, _ in PROBES) or init[c.name].get("lifecycle"):
                raise LifecycleError(f"initContainers {c.name}: probes and lifecycle hooks are not allowed")
            containers.append(dataclasses.replace(c, init=True))
        elif c.name in apps:
            index, container = apps[c.name]
            containers.append(_with_lifecycle(c, container, f"spec.containers[{index}]"))
        else:
            containers.append(c)
    left = deadline_left(pod, now)
    deadline = 0 if left is None else max(left, 1)  # exceeded already: pod-init ends it at once
    return dataclasses.replace(desc, containers=tuple(containers), deadline_s=deadline)


EventRecord = tuple[str, str, str]
"""(type, reason, message) of one Kubernetes Event."""


def events(event: control.Event, *, was_terminal: bool = False) -> list[EventRecord]:
    """The Events the kubelet records for one pod-init report: ``Unhealthy`` for every failed probe
    attempt, ``Killing`` when a failed probe or postStart hook stops a container, the hooks'
    ``FailedPostStartHook``/``FailedPreStopHook``, and ``DeadlineExceeded``.

    ``DeadlineExceeded`` is recorded once, when the deadline makes the pod terminal: at pod-init's
    ``deadline`` event, not again at the ``pod`` event that follows it (``was_terminal``: the pod was
    terminal before this report). A pod-init that sends no ``deadline`` event (an older one, in a VM
    a restarted agent adopted) still gets its Event with the ``pod`` event.
    """
    if isinstance(event, control.ProbeResult) and not event.ok:
        return [("Warning", "Unhealthy", f"{event.probe.capitalize()} probe failed: {event.message}")]
    if isinstance(event, control.Killing):
        if event.reason == "poststart":
            message = "FailedPostStartHook"  # the kubelet's kill message for it
        else:
            message = f"Container {event.container} failed {event.reason} probe"
            message += ", will be restarted" if event.restart else ""
        return [("Normal", "Killing", message)]
    if isinstance(event, control.HookFailed):
        reason = "FailedPostStartHook" if event.hook == "postStart" else "FailedPreStopHook"
        return [
            ("Warning", reason, f"{event.hook} hook for container {event.container} failed: {event.message}")
        ]
    deadline = isinstance(event, control.DeadlineExceeded) or (
        isinstance(event, control.PodDone) and event.reason == "DeadlineExceeded"
    )
    if deadline and not was_terminal:
        return [("Warning", "DeadlineExceeded", DEADLINE_EXCEEDED)]
    return []
