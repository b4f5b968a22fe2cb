"""What the API server knows about its etcd cluster's health, from each member's own status.

Without a quorum etcd does not refuse a request: it holds it until its own request timeout
(seconds, then "request timed out"), so an API server that only waits looks hung to its clients
and to the load balancer. Each member answers ``Maintenance/Status`` from its local state even
without a quorum (member id, the leader it follows, raft term), and a stopped member does not
answer at all: polling every member often gives a view of the cluster that tells "a majority is
there, an election is under way, wait for it" from "no majority, nothing can be stored, refuse
now" (:func:`quorum_problem`). etcd's client (clientv3) keeps no such view; kube-apiserver reads
its /readyz etcd check from a request with a deadline. The lab wants the refusal within a second.

The view and the messages are pure; :class:`MemberPoll` runs the rounds with a probe it is given
(the etcd client's one status request per member), so its timing rules are tested with a fake one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

NO_LEADER = "0"  # etcd's raft.None: the member follows nobody (election under way, or no quorum)
NO_ANSWER = "no answer in time"  # the error of a member whose status did not come within the timeout
ALL_SILENT_ROUNDS = 2
"""Rounds in a row in which no member answers in time that are not believed (the last view stays)."""


@dataclass(frozen=True)
class MemberStatus:
    """One member's answer to ``Maintenance/Status`` (or its absence)."""

    endpoint: str
    """The client URL polled."""
    answered: bool
    """Whether it answered within the poll's timeout."""
    member_id: str = ""
    """Its member id (decimal)."""
    leader_id: str = NO_LEADER
    """The member it follows as leader; ``NO_LEADER`` during an election or without quorum."""
    raft_term: int = 0
    """Its raft term: it rises with every election it takes part in."""
    error: str = ""
    """Why it did not answer (for messages)."""


@dataclass(frozen=True)
class ClusterView:
    """Every member's status from one poll round."""

    members: tuple[MemberStatus, ...]
    cluster_size: int = 0
    """Voting members the cluster has, from an answering member's member list; 0 when not asked
    (a poll asks only when the endpoints alone would mean no quorum)."""

    @property
    def size(self) -> int:
        """Voting members: the cluster's own count when known, else the endpoints polled
        (``--etcd-servers`` lists every member of the cluster)."""
        return self.cluster_size or len(self.members)

    @property
    def majority(self) -> int:
        """Members needed to elect a leader and commit a write."""
        return self.size // 2 + 1

    @property
    def answering(self) -> tuple[MemberStatus, ...]:
        """The members that answered, each once (two endpoints of one member count once)."""
        seen: set[str] = set()
        found: list[MemberStatus] = []
        for m in self.members:
            if m.answered and (not m.member_id or m.member_id not in seen):
                seen.add(m.member_id)
                found.append(m)
        return tuple(found)

    @property
    def leader(self) -> str | None:
        """The leader's member id, when an answering member follows one that also answers."""
        ids = {m.member_id for m in self.answering}
        followed = [m.leader_id for m in self.answering if m.leader_id != NO_LEADER]
        return next((lead for lead in followed if lead in ids), None)

    @property
    def has_quorum(self) -> bool:
        """A majority of members answers: a leader exists or will be elected within an election
        timeout, so a request may wait for it rather than be refused."""
        return len(self.answering) >= self.majority


def parse_status(endpoint: str, member_id: int, leader: int, raft_term: int) -> MemberStatus:
    """A member's ``Maintenance/Status`` answer: its id (from the header), the leader it follows
    (0 while it follows nobody) and its raft term."""
    return MemberStatus(
        endpoint=endpoint,
        answered=True,
        member_id=str(member_id),
        leader_id=str(leader) if leader else NO_LEADER,
        raft_term=raft_term,
    )


def unanswered(endpoint: str, error: str) -> MemberStatus:
    """A member that did not answer the poll."""
    return MemberStatus(endpoint=endpoint, answered=False, error=error)


def quorum_problem(view: ClusterView, *, write: bool) -> str | None:
    """The refusal message when ``view`` has no quorum, else None.

    It names etcd quorum, how many members answer, the leader as far as anyone knows, and what
    happened to the request (refused before it reached etcd: nothing was stored)."""
    if view.has_quorum:
        return None
    leader = view.leader
    known = "leader unknown" if leader is None else f"member {leader} still claims leadership"
    silent = [m for m in view.members if not m.answered]
    detail = "; ".join(f"{m.endpoint}: {m.error}" for m in silent[:3] if m.error)
    done = (
        "writes are refused, nothing was stored"
        if write
        else "reads and writes are refused, nothing was stored"
    )
    head = "etcd cluster has no quorum" if view.answering else "no etcd endpoint answered, so no etcd quorum"
    return (
        f"{head}: {len(view.answering)} of {view.size} members answer ({known}); "
        f"{done}; the API answers again by itself once {view.majority} members are back"
        + (f" (not answering: {detail})" if detail else "")
    )


def in_doubt(endpoint: str, why: str) -> str:
    """The message for a write that was sent but not answered: it may have been applied.

    Upstream's wording for a request that timed out after reaching storage (504 Timeout): the
    server "may still be processing the request"; a client must read before it retries."""
    return (
        f"etcd at {endpoint} {why}: the write may or may not have been stored "
        "(read the object before retrying)"
    )


Probe = Callable[[str], Awaitable[MemberStatus]]
Membership = Callable[[str], Awaitable[int]]
"""Voting members of the cluster as the member at an endpoint knows them (0 when it cannot say)."""


class MemberPoll:
    """Polls every member's status every ``interval`` seconds in a task of its own (started by the
    first request, stopped by the client's ``close()``); :attr:`lost` is set while there is no quorum.
    """

    def __init__(
        self, endpoints: Sequence[str], probe: Probe, interval: float, membership: Membership | None = None
    ) -> None:
        self.endpoints, self.probe, self.interval = tuple(endpoints), probe, interval
        self.membership = membership
        self.view: ClusterView | None = None
        self.lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._late: set[str] = set()
        self._silent_rounds = 0

    def start(self) -> None:
        """Start polling (again, if it stopped)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._forever())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def current(self) -> ClusterView:
        """The latest view; one round now when none ran yet."""
        self.start()
        view = self.view
        if view is None:
            view = await self.round()
            self._set(view)
        return view

    async def round(self) -> ClusterView:
        """Every member's status, asked at once. When the endpoints alone mean no quorum, one
        answering member is asked how many voting members the cluster has: an endpoint list may
        name a dead address that is no member (a client's failover list), and a cluster of one
        member answering is whole."""
        view = ClusterView(tuple(await asyncio.gather(*(self.probe(e) for e in self.endpoints))))
        if view.has_quorum or not view.answering or self.membership is None:
            return view
        size = await self.membership(view.answering[0].endpoint)
        return ClusterView(view.members, size) if size > 0 else view

    async def _forever(self) -> None:
        while True:
            self.observe(await self.round())
            await asyncio.sleep(self.interval)

    def observe(self, view: ClusterView) -> None:
        """Take one round's view, except that a member which answered last round and merely timed out
        this one keeps its last status for one more round: on two loaded cores a status can come
        late (this process's event loop busy with a long request, etcd starved for a moment), and a
        false "no quorum" would refuse good requests. A member that refuses the connection (stopped)
        is believed at once; one that stays silent from the second round on.

        A round in which no member at all answers in time, the one beside this API server included,
        says more about this process or machine (its event loop or cores starved: CI saw every
        member "late" at once while a kernel built on both cores) than about etcd: such rounds
        keep the last view for :data:`ALL_SILENT_ROUNDS` rounds in a row (about 2 s) before they
        are believed. A quorum loss the lab can cause (members stopped, some still answering) is
        unaffected, and without any member nothing could be stored anyway."""
        if self.view is not None and view.members and all(m.error == NO_ANSWER for m in view.members):
            self._silent_rounds += 1
            if self._silent_rounds <= ALL_SILENT_ROUNDS:
                return
        else:
            self._silent_rounds = 0
        previous = {m.endpoint: m for m in self.view.members} if self.view is not None else {}
        late = {
            m.endpoint
            for m in view.members
            if m.error == NO_ANSWER and previous.get(m.endpoint, m).answered and m.endpoint not in self._late
        }
        self._late = late
        kept = tuple(previous[m.endpoint] if m.endpoint in late else m for m in view.members)
        self._set(ClusterView(kept, view.cluster_size))

    def _set(self, view: ClusterView) -> None:
        self.view = view
        if view.has_quorum:
            self.lost.clear()
        else:
            self.lost.set()
