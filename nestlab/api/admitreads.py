"""The admission reads of one create, made together: one etcd round trip instead of one per plugin.

A pod create reads its namespace (NamespaceLifecycle), the namespace's ResourceQuotas, its
LimitRanges and its ServiceAccount before it is stored; each was its own linearizable etcd read,
so the round trips (and their system calls, on both sides) were most of a create's cost. The
registry now reads them in one read-only etcd transaction (:meth:`~nestlab.api.store.Store.read_together`)
once the object is defaulted, and the plugins take their answers from that snapshot. It is read
after the request arrived, at one revision, as each separate read was: a LimitRange or quota
stored before the create is seen by it, through any API server; nothing is cached across requests.

A plugin says what it reads by being a :class:`ReadingHook`; it finds the snapshot with
:func:`known_object` / :func:`known_list`, which answer only for the object being created (the
context variable is set by :meth:`~nestlab.api.registry.Registry.create` around its admission
and reset after it), and the plugin reads from the store itself whenever the snapshot does not hold
what it wants (a hook called on its own, an update, another object).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from nestlab.api.resources import Resource
from nestlab.api.store import Snapshot, Wanted

Obj = dict[str, Any]
HookCall = Callable[[Resource, str, Obj, Obj | None], Awaitable[None]]
Wants = Callable[[Resource, str, Obj], Sequence[Wanted]]
"""(resource, namespace, new object) -> the reads a hook makes when that object is created."""

CURRENT: ContextVar[tuple[Obj, Snapshot] | None] = ContextVar("nestlab_admission_reads", default=None)
"""The object being created and what was read for its admission (set by the registry's create)."""


@dataclass(frozen=True)
class ReadingHook:
    """A registry hook (:data:`nestlab.api.registry.Hook`) that declares the reads it makes on create."""

    run: HookCall
    wants: Wants

    async def __call__(self, resource: Resource, namespace: str, new: Obj, old: Obj | None) -> None:
        await self.run(resource, namespace, new, old)


def _snapshot(obj: Obj) -> Snapshot | None:
    current = CURRENT.get()
    return current[1] if current is not None and current[0] is obj else None


def known_object(obj: Obj, wanted: Wanted) -> tuple[bool, Obj | None]:
    """(True, the object or None when absent) if the admission reads of ``obj``'s create hold
    ``wanted``; (False, None) when the caller must read it itself."""
    snapshot = _snapshot(obj)
    if snapshot is None or wanted not in snapshot.objects:
        return False, None
    return True, snapshot.objects[wanted]


def known_list(obj: Obj, wanted: Wanted) -> list[Obj] | None:
    """The list ``wanted`` as read for ``obj``'s create, or None when the caller must list it itself."""
    snapshot = _snapshot(obj)
    return None if snapshot is None else snapshot.lists.get(wanted)
