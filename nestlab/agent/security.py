"""runAsNonRoot as the kubelet checks it: a pure verdict from the pod spec and the image's user.

vSphere Pods run each container as the user the spec or the image names; a pod that asks for
``runAsNonRoot`` must not start a container that would run as root, and must say why in the
kubelet's own words (``verifyRunAsNonRoot`` in pkg/kubelet/kuberuntime, the container left
waiting with ``CreateContainerConfigError``). The image's user is its config ``User``
(``uid``, ``uid:gid``, ``name`` or ``name:group``; empty means root), read after the pull, so the
check runs between the pull and the VM's launch. Pure: no I/O, the caller raises.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nestlab.agent import podspec

Obj = dict[str, Any]
REASON = "CreateContainerConfigError"
MAX_UID = 2**31 - 1  # upstream IsValidUserID: 0..math.MaxInt32


def _context(spec: Obj, container: Obj) -> Obj:
    """upstream DetermineEffectiveSecurityContext for the two fields that matter here."""
    pod: Obj = spec["securityContext"] if isinstance(spec.get("securityContext"), dict) else {}
    own: Obj = container["securityContext"] if isinstance(container.get("securityContext"), dict) else {}
    merged: Obj = {}
    for name in ("runAsNonRoot", "runAsUser"):
        value = own.get(name) if own.get(name) is not None else pod.get(name)
        if value is not None:
            merged[name] = value
    return merged


def image_user(user: str) -> tuple[int | None, str]:
    """(uid, "") for a numeric image user (empty: root), (None, name) for a named one."""
    name = user.partition(":")[0]
    if not name:
        return 0, ""
    return (int(name), "") if name.isdigit() else (None, name)


def _pod_text(pod: Obj) -> str:
    """upstream format.Pod: ``name_namespace(uid)``, quoted as Go's %q does."""
    meta = pod.get("metadata") or {}
    return f'"{meta.get("name", "")}_{meta.get("namespace", "")}({meta.get("uid", "")})"'


def verify_run_as_non_root(pod: Obj, container: Obj, user: str) -> str | None:
    """The kubelet's refusal of ``container`` (a dict of ``pod``'s spec) whose image user is
    ``user``, or None when it may start."""
    context = _context(pod.get("spec") or {}, container)
    if context.get("runAsNonRoot") is not True:
        return None
    where = f"(pod: {_pod_text(pod)}, container: {container.get('name', '')})"
    if context.get("runAsUser") is not None:
        return f"container's runAsUser breaks non-root policy {where}" if context["runAsUser"] == 0 else None
    uid, name = image_user(user)
    if uid is None:
        return (
            f"container has runAsNonRoot and image has non-numeric user ({name}), "
            f"cannot verify user is non-root {where}"
        )
    if uid == 0:
        return f"container has runAsNonRoot and image will run as root {where}"
    if uid > MAX_UID:
        return (
            f"container has runAsNonRoot and image has an invalid user id ({uid}). (Must be 1-({MAX_UID})): "
            f"must be between 0 and {MAX_UID}, inclusive {where}"
        )
    return None


def non_root_problem(pod: Obj, image_users: Mapping[str, str]) -> tuple[str, str] | None:
    """The first (container name, refusal) among ``pod``'s containers (init containers first);
    ``image_users`` maps each container name to its image's config ``User``."""
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict):
            continue
        name = str(container.get("name", ""))
        problem = verify_run_as_non_root(pod, container, image_users.get(name, ""))
        if problem is not None:
            return name, problem
    return None


def enforce_non_root(pod: Obj, image_users: Mapping[str, str]) -> None:
    """Raise :class:`~nestlab.agent.podspec.WaitingForConfig` (CreateContainerConfigError, as the
    kubelet) for the first container that runAsNonRoot forbids to start."""
    blocked = non_root_problem(pod, image_users)
    if blocked is not None:
        raise podspec.WaitingForConfig(*blocked)
