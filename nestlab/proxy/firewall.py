"""Keeps this host's table ``ip nestlab-policy`` matching the NetworkPolicies, pods and namespaces.

The enforcement half of the distributed firewall, run inside ``nestlab-proxy`` on every host. It
reads three shared informers (pods, namespaces, networkpolicies: watches, never polling), and on
any change that can alter the rules it queues one key in a :class:`WorkQueue`: a burst of events
(a Deployment scaling, a namespace relabelled) coalesces into one recomputation. The sync
compiles the whole desired table (:func:`nestlab.proxy.policy.compile_ruleset`, pure and cheap at
lab sizes) and applies only the difference from what it last applied, as one nft transaction;
the first sync after start, and the one after any failed apply, rebuilds the table whole. There
is no delay in the path from a watch event to ``nft``: a policy reaches every host's rules as
soon as that host's watch delivers it (well within the issue's second).

Nothing is applied before all three informers have listed once: a partial view (policies
without their peer pods) would drop traffic that the policies allow.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from nestlab.controller.informer import EventHandler, Informer
from nestlab.controller.workqueue import WorkQueue, run_workers
from nestlab.proxy import policy, policynft

log = logging.getLogger(__name__)
Obj = dict[str, Any]
KEY = "ruleset"
"""The queue's only key: every change asks for the same thing, the table recomputed."""


class NftApply(Protocol):
    """Commits ``commands`` (nft command lines) as one ``nft -f -`` transaction; raises if refused.

    :meth:`nestlab.proxy.nft.Nft.apply` is one. Called from a worker thread
    (``asyncio.to_thread``), so a slow nft never blocks the watches.
    """

    def __call__(self, commands: Sequence[str]) -> None: ...


class Firewall:
    """NetworkPolicy enforcement for the pods of host ``node``: ``await run()`` until cancelled."""

    name = "networkpolicy"

    def __init__(
        self,
        node: str,
        *,
        pods: Informer,
        namespaces: Informer,
        policies: Informer,
        apply: NftApply,
    ) -> None:
        self.node = node
        self.pods = pods
        self.namespaces = namespaces
        self.policies = policies
        self.apply = apply
        self.queue = WorkQueue(self.name)
        self.applied: policy.Ruleset | None = None
        """What the table holds now, as far as this process knows (None: unknown, rebuild it)."""
        self.applies = 0
        """Transactions sent to nft so far (for tests and logs)."""
        self.pods.add_handler(self._on_change(_pod_view))
        self.namespaces.add_handler(self._on_change(_namespace_view))
        self.policies.add_handler(self._on_change(_policy_view))

    def _on_change(self, view: Any) -> EventHandler:
        """A handler queueing the key when an object's firewall-relevant ``view`` changed."""

        def changed(old: Obj, new: Obj) -> None:
            if view(old) != view(new):
                self.queue.add(KEY)

        return EventHandler(
            on_add=lambda obj: self.queue.add(KEY),
            on_update=changed,
            on_delete=lambda obj: self.queue.add(KEY),
        )

    def desired(self) -> policy.Ruleset:
        """The table this host should hold, from the informers' caches."""
        pods = [found for obj in self.pods.list() if (found := policy.pod_of(obj)) is not None]
        namespaces = policy.namespace_labels(self.namespaces.list())
        policies = [obj for obj in self.policies.list() if isinstance(obj.get("spec"), dict)]
        return policy.compile_ruleset(self.node, pods, namespaces, policies)

    async def sync(self, _key: str = KEY) -> None:
        """Bring the table to the desired state in one transaction (raises to be retried)."""
        desired = self.desired()
        commands = policynft.full(desired) if self.applied is None else policynft.diff(self.applied, desired)
        if not commands:
            return
        try:
            await asyncio.to_thread(self.apply, commands)
        except BaseException:
            self.applied = None  # the table's state is unknown now: the retry rebuilds it whole
            raise
        self.applies += 1
        self.applied = desired
        log.debug("networkpolicy: applied %d nft command(s)", len(commands))

    async def run(self) -> None:
        """Wait for the informers' first lists, build the table, then follow every change."""
        await asyncio.gather(*(i.synced.wait() for i in (self.pods, self.namespaces, self.policies)))
        self.queue.add(KEY)
        try:
            await run_workers(self.queue, self.sync, workers=1)
        finally:
            self.queue.shutdown()


def _pod_view(obj: Obj) -> policy.Pod | None:
    return policy.pod_of(obj)


def _namespace_view(obj: Obj) -> Any:
    return (obj.get("metadata") or {}).get("labels")


def _policy_view(obj: Obj) -> Any:
    return obj.get("spec")
