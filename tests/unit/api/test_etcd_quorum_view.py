"""The etcd member-status view: election vs lost quorum, and the refusal's message."""

from __future__ import annotations

import asyncio

from nestlab.api import etcdquorum
from nestlab.api.etcdquorum import NO_LEADER, ClusterView, MemberStatus


def _up(n: int, leader: str = "11") -> MemberStatus:
    return MemberStatus(f"https://cp-{n}:2379", True, member_id=str(10 + n), leader_id=leader, raft_term=3)


def _down(n: int, error: str = "ClientConnectorError") -> MemberStatus:
    return etcdquorum.unanswered(f"https://cp-{n}:2379", error)


def test_parse_status_names_the_member_and_its_leader() -> None:
    status = etcdquorum.parse_status("https://cp-1:2379", 1234, 5678, 4)
    assert status == MemberStatus("https://cp-1:2379", True, member_id="1234", leader_id="5678", raft_term=4)


def test_parse_status_without_a_leader() -> None:
    status = etcdquorum.parse_status("e", 1, 0, 4)
    assert status.leader_id == NO_LEADER


def test_all_members_with_a_leader_have_quorum() -> None:
    view = ClusterView((_up(1), _up(2), _up(3)))
    assert view.has_quorum
    assert view.leader == "11"
    assert etcdquorum.quorum_problem(view, write=True) is None


def test_an_election_with_a_majority_is_not_a_quorum_loss() -> None:
    view = ClusterView((_down(1), _up(2, NO_LEADER), _up(3, NO_LEADER)))
    assert view.has_quorum  # wait for the new leader rather than refuse
    assert view.leader is None


def test_one_of_three_is_a_quorum_loss_named_as_such() -> None:
    view = ClusterView((_up(1, NO_LEADER), _down(2), _down(3, "no answer in time")))
    problem = etcdquorum.quorum_problem(view, write=True)
    assert problem is not None
    assert problem.startswith("etcd cluster has no quorum: 1 of 3 members answer (leader unknown); ")
    assert "writes are refused, nothing was stored" in problem
    assert "once 2 members are back" in problem
    assert "https://cp-3:2379: no answer in time" in problem


def test_a_lone_member_still_claiming_leadership_is_named() -> None:
    view = ClusterView((_up(1, "11"), _down(2), _down(3)))
    problem = etcdquorum.quorum_problem(view, write=False)
    assert problem is not None
    assert "(member 11 still claims leadership)" in problem
    assert "reads and writes are refused" in problem


def test_a_leader_that_does_not_answer_is_not_reported() -> None:
    view = ClusterView((_up(1, "12"), _down(2), _down(3)))  # follows cp-2, which is gone
    assert view.leader is None


def test_no_member_answering_says_so() -> None:
    view = ClusterView((_down(1), _down(2), _down(3)))
    problem = etcdquorum.quorum_problem(view, write=True)
    assert problem is not None
    assert problem.startswith("no etcd endpoint answered, so no etcd quorum: 0 of 3 members answer")


def test_five_members_need_three() -> None:
    three = ClusterView((_up(1), _up(2), _up(3), _down(4), _down(5)))
    two = ClusterView((_up(1), _up(2), _down(3), _down(4), _down(5)))
    assert three.majority == 3
    assert three.has_quorum
    assert not two.has_quorum


def test_a_write_in_doubt_says_it_may_have_been_stored() -> None:
    message = etcdquorum.in_doubt("https://cp-1:2379/v3/kv/txn", "did not answer in time")
    assert "may or may not have been stored" in message
    assert "read the object before retrying" in message


def test_the_poll_sets_lost_without_quorum_and_clears_it_when_back() -> None:
    answers = {"a": True, "b": True, "c": True}

    async def probe(endpoint: str) -> MemberStatus:
        if answers[endpoint]:
            return MemberStatus(endpoint, True, member_id=endpoint, leader_id="a")
        return etcdquorum.unanswered(endpoint, "ClientConnectorError")

    async def scenario() -> list[bool]:
        poll = etcdquorum.MemberPoll(["a", "b", "c"], probe, interval=0.001)
        seen = [(await poll.current()).has_quorum]
        answers.update(b=False, c=False)
        await asyncio.wait_for(poll.lost.wait(), timeout=30)
        seen.append(poll.lost.is_set())
        answers.update(b=True)
        while poll.lost.is_set():
            await asyncio.sleep(0.001)
        seen.append(poll.view is not None and poll.view.has_quorum)
        await poll.stop()
        return seen

    assert asyncio.run(scenario()) == [True, True, True]


def test_a_member_that_times_out_once_is_not_believed_before_the_second_round() -> None:
    """A late status (loaded cores) keeps the member's last answer for one round."""

    async def probe(endpoint: str) -> MemberStatus:
        raise AssertionError("not called")

    poll = etcdquorum.MemberPoll(["a", "b", "c"], probe, interval=1)
    late = etcdquorum.NO_ANSWER
    poll.observe(ClusterView((_up(1), _up(2), _up(3))))
    poll.observe(ClusterView((_up(1), _down(2, late), _down(3, late))))
    assert not poll.lost.is_set()
    poll.observe(ClusterView((_up(1), _down(2, late), _down(3, late))))
    assert poll.lost.is_set()
    poll.observe(ClusterView((_up(1), _up(2), _up(3))))
    assert not poll.lost.is_set()
    poll.observe(ClusterView((_down(1, late), _down(2, late), _down(3, late))))
    assert not poll.lost.is_set()


def test_rounds_where_no_member_answers_in_time_are_believed_only_when_they_last() -> None:
    """Every member late at once is this process starved, until it lasts ALL_SILENT_ROUNDS rounds."""

    async def probe(endpoint: str) -> MemberStatus:
        raise AssertionError("not called")

    poll = etcdquorum.MemberPoll(["a", "b", "c"], probe, interval=1)
    late = etcdquorum.NO_ANSWER
    silent = ClusterView((_down(1, late), _down(2, late), _down(3, late)))
    poll.observe(ClusterView((_up(1), _up(2), _up(3))))
    for _ in range(etcdquorum.ALL_SILENT_ROUNDS):
        poll.observe(silent)
        assert not poll.lost.is_set()
    poll.observe(silent)  # kept the previous view: this round is the first "late" one of each member
    poll.observe(silent)
    assert poll.lost.is_set()
    poll.observe(ClusterView((_up(1), _up(2), _up(3))))
    assert not poll.lost.is_set()
    poll.observe(silent)  # the count starts again after a round with answers
    assert not poll.lost.is_set()


def test_members_refusing_connections_are_believed_at_once() -> None:
    async def probe(endpoint: str) -> MemberStatus:
        raise AssertionError("not called")

    poll = etcdquorum.MemberPoll(["a", "b", "c"], probe, interval=1)
    poll.observe(ClusterView((_up(1), _up(2), _up(3))))
    poll.observe(ClusterView((_up(1), _down(2), _down(3, "ClientConnectorError"))))
    assert poll.lost.is_set()


def test_two_endpoints_of_one_member_count_once() -> None:
    twice = MemberStatus("https://127.0.0.1:2379", True, member_id="11", leader_id="11")
    view = ClusterView((_up(1), twice, _down(2), _down(3)), cluster_size=3)
    assert len(view.answering) == 1
    assert not view.has_quorum


def test_the_cluster_says_how_many_members_it_has_when_endpoints_alone_mean_no_quorum() -> None:
    """An endpoint list with a dead address that is no member (a client's failover list) and the
    one member of a single-member cluster: whole. Three members with one answering: no quorum."""
    asked: list[str] = []

    def poll_of(members_in_cluster: int) -> etcdquorum.MemberPoll:
        async def probe(endpoint: str) -> MemberStatus:
            if endpoint == "live":
                return MemberStatus(endpoint, True, member_id="7", leader_id="7")
            return etcdquorum.unanswered(endpoint, "ClientConnectorError")

        async def membership(endpoint: str) -> int:
            asked.append(endpoint)
            return members_in_cluster

        return etcdquorum.MemberPoll(["dead", "live"], probe, interval=1.0, membership=membership)

    whole = asyncio.run(poll_of(1).round())
    assert (whole.size, whole.has_quorum) == (1, True)
    lost = asyncio.run(poll_of(3).round())
    assert (lost.size, lost.has_quorum) == (3, False)
    assert "2 members are back" in str(etcdquorum.quorum_problem(lost, write=False))
    assert asked == ["live", "live"]  # only an answering member is asked


def test_a_member_list_that_cannot_be_read_leaves_the_endpoints_count() -> None:
    async def probe(endpoint: str) -> MemberStatus:
        return MemberStatus(endpoint, True, member_id="1", leader_id="1") if endpoint == "a" else _down(2)

    async def membership(_endpoint: str) -> int:
        return 0

    view = asyncio.run(etcdquorum.MemberPoll(["a", "b", "c"], probe, 1.0, membership=membership).round())
    assert (view.size, view.has_quorum) == (3, False)
