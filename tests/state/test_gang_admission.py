"""The scheduling pass admits a pod group all or nothing (issue 17, docs/pod-groups.md).

Each case is one pass over one pool of DGX-1-like nodes (8 GPUs, two NVLink islands of four):
some GPUs already held by tenant ``other``, tenant ``a``'s group ``train`` (members ``a/w0``,
``a/w1``, ...) waiting behind the gate, perhaps small pods of tenant ``b``. The pass must lift
the gates of every member of ``train`` or of none, and say why in each member's hold.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.builders import operator as b

from gpufair.state import model, scheduling


@dataclasses.dataclass(frozen=True)
class Case:
    members: int = 4
    """Members of ``train`` created so far (each asks for ``member_gpus``)."""
    size: int = 4
    member_gpus: int = 2
    nodes: int = 1
    held: tuple[int, ...] = (0,)
    """GPUs tenant ``other`` holds on each node (n0, n1, ...)."""
    limit: int | None = None
    """Tenant ``a``'s limit in the pool."""
    bound_members: int = 0
    """Members of ``train`` already running (the rest wait)."""
    small: int = 0
    """1-GPU pods of tenant ``b`` waiting too."""
    admitted: int = 0
    """Members of ``train`` admitted by the pass: every waiting one, or none."""
    small_admitted: int = 0
    reason: str | None = None
    """Part of every waiting member's hold (when none is admitted)."""


CASES = [
    pytest.param(
        Case(held=(2,), reason="needs 8 GPUs at once; the pool has 6 free"),
        id="room-for-3-of-4-admits-none",
    ),
    pytest.param(Case(held=(0,), admitted=4), id="room-for-4-admits-all-in-one-pass"),
    pytest.param(
        Case(members=2, reason="group train waits: 2 of 4 members created"),
        id="members-missing-admits-none",
    ),
    pytest.param(
        Case(members=3, held=(0,), reason="3 of 4 members created"),
        id="members-missing-even-with-room",
    ),
    pytest.param(
        Case(held=(2,), small=3, small_admitted=3, reason="the pool has 6 free"),
        id="a-group-that-does-not-fit-does-not-block-small-pods",
    ),
    pytest.param(
        Case(nodes=2, held=(0, 0), small=3, admitted=4, small_admitted=3),
        id="group-and-small-pods-both-fit",
    ),
    pytest.param(
        Case(
            nodes=3,
            held=(5, 5, 5),
            small=2,
            small_admitted=2,
            reason="the free GPUs cannot hold every pod at once (free per node: 3, 3, 3)",
        ),
        id="enough-free-gpus-but-fragmented",
    ),
    pytest.param(
        Case(member_gpus=4, members=2, size=2, nodes=2, held=(4, 4), admitted=2),
        id="one-member-per-node",
    ),
    pytest.param(
        Case(held=(0,), limit=6, reason="group train (4 pods of 2 GPUs): "),
        id="over-the-tenants-limit-admits-none",
    ),
    pytest.param(
        Case(held=(0,), bound_members=3, admitted=1),
        id="the-rest-of-a-running-group-is-admitted",
    ),
]


def _pass(case: Case) -> scheduling.Decisions:
    nodes = [b.node(f"n{i}") for i in range(case.nodes)]
    others = [
        b.pod(f"other/x{i}").gpus(count).bound(f"n{i}", indices=range(count)).build()
        for i, count in enumerate(case.held)
        if count
    ]
    train = []
    for index in range(case.members):
        member = b.pod(f"a/w{index}").gpus(case.member_gpus).group("train", case.size)
        if index < case.bound_members:
            start = 8 - case.member_gpus * (index + 1)
            member = member.bound("n0", indices=range(start, start + case.member_gpus))
        train.append(member.created(float(index)).build())
    small = [b.pod(f"b/s{i}").created(50.0).build() for i in range(case.small)]
    snap = b.snap(
        now=100.0,
        nodes=nodes,
        tenants=[
            b.tenant("other").pool().build(),
            b.tenant("a").pool(limit=case.limit).build(),
            b.tenant("b").pool().build(),
        ],
        pods=[*others, *train, *small],
    )
    return scheduling.schedule(snap, half_life=3600.0)


@pytest.mark.parametrize("case", CASES)
def test_a_group_is_admitted_whole_or_not_at_all(case: Case) -> None:
    decided = _pass(case)
    admitted = {a.pod.key for a in decided.admissions}
    members = {f"a/w{i}" for i in range(case.bound_members, case.members)}
    assert len(admitted & members) == case.admitted
    assert len({key for key in admitted if key.startswith("b/")}) == case.small_admitted
    if case.reason is not None:
        waiting = [a for a in decided.admissions if a.pod.key in members]
        assert waiting == []
        held = {
            pod.key: decided.holds.get(pod.uid)
            for pods in decided.placed.values()
            for pod in pods
            if pod.key in members
        }
        assert set(held) == members
        for message in held.values():
            assert message is not None
            assert case.reason in message


@settings(max_examples=60, deadline=None)
@given(
    held=st.lists(st.integers(0, 8), min_size=1, max_size=3),
    members=st.integers(1, 5),
    size=st.integers(1, 5),
    member_gpus=st.sampled_from([1, 2, 4, 8]),
    small=st.integers(0, 3),
    limit=st.one_of(st.none(), st.integers(0, 16)),
)
def test_a_pass_never_admits_part_of_a_group(
    held: list[int], members: int, size: int, member_gpus: int, small: int, limit: int | None
) -> None:
    """Whatever the pool, group and neighbours: every waiting member admitted, or none; and all
    of them only when the whole group exists and fits within the tenant's limit."""
    case = Case(
        members=members,
        size=size,
        member_gpus=member_gpus,
        nodes=len(held),
        held=tuple(held),
        small=small,
        limit=limit,
    )
    decided = _pass(case)
    admitted = {a.pod.key for a in decided.admissions if a.pod.key.startswith("a/")}
    assert len(admitted) in (0, members)
    if admitted:
        assert members >= size
        assert limit is None or members * member_gpus <= limit
        assert members * member_gpus <= sum(8 - h for h in held)
    # Each member carries its node in the plan, and the plan fits the free GPUs it was made on.
    planned: dict[str, int] = {}
    for chosen in decided.admissions:
        if chosen.pod.key.startswith("a/"):
            assert chosen.node is not None
            planned[chosen.node] = planned.get(chosen.node, 0) + chosen.pod.gpus
        else:
            assert chosen.node is None
    for node, gpus in planned.items():
        assert gpus <= 8 - held[int(node.removeprefix("n"))]


PLANS = [
    pytest.param(Case(held=(0,), admitted=4), {"n0": 4}, id="four-members-on-one-free-machine"),
    pytest.param(
        Case(member_gpus=4, members=2, size=2, nodes=2, held=(4, 4), admitted=2),
        {"n0": 1, "n1": 1},
        id="one-member-per-node-when-each-has-half-free",
    ),
    pytest.param(
        Case(nodes=3, held=(6, 0, 4), admitted=4),
        {"n1": 4},
        id="fewest-machines-the-one-with-room-for-all",
    ),
    pytest.param(
        Case(held=(0,), bound_members=3, admitted=1),
        {"n0": 1},
        id="the-last-member-of-a-running-group",
    ),
]


@pytest.mark.parametrize(("case", "members_per_node"), PLANS)
def test_admitted_members_carry_their_node_in_the_groups_plan(
    case: Case, members_per_node: dict[str, int]
) -> None:
    decided = _pass(case)
    per_node: dict[str | None, int] = {}
    for chosen in decided.admissions:
        per_node[chosen.node] = per_node.get(chosen.node, 0) + 1
    assert per_node == members_per_node


# -- reclaim for a whole group ----------------------------------------------------------------


def _reclaim_pass(*, borrowed: int, group_size: int, terminating: int = 0) -> scheduling.Decisions:
    """Two 8-GPU nodes; ``borrowed`` 4-GPU pods of borrower ``b`` (youngest last), the first
    ``terminating`` of them already being evicted; ``a``, of the same weight (a fair share of 8
    GPUs), waits with group ``train`` of ``group_size`` pods of 4 GPUs."""
    spots = [("n0", range(4)), ("n0", range(4, 8)), ("n1", range(4)), ("n1", range(4, 8))]
    borrower = []
    for index, (node, gpus) in enumerate(spots[:borrowed]):
        pod = b.pod(f"b/x{index}").gpus(4).bound(node, at=float(index), indices=gpus).build()
        if index < terminating:
            pod = dataclasses.replace(pod, state=model.PodState.TERMINATING, deleting_at=130.0)
        borrower.append(pod)
    train = [
        b.pod(f"a/w{index}").gpus(4).group("train", group_size).created(50.0).build()
        for index in range(group_size)
    ]
    snap = b.snap(
        now=100.0,
        nodes=[b.node("n0"), b.node("n1")],
        tenants=[b.tenant("a").pool().build(), b.tenant("b").pool().build()],
        pods=[*borrower, *train],
    )
    return scheduling.schedule(snap, half_life=3600.0)


def test_reclaim_makes_room_for_every_member_at_once() -> None:
    decided = _reclaim_pass(borrowed=4, group_size=2)
    assert decided.admissions == ()
    evicted = sorted(e.pod.key for e in decided.evictions)
    assert evicted == ["b/x2", "b/x3"]
    assert all("group train" in e.message for e in decided.evictions)


def test_no_reclaim_for_part_of_a_group_beyond_its_tenants_share() -> None:
    """a's share is 8 GPUs: a group of three 4-GPU pods cannot be made room for, and no member
    reclaims on its own (the group reclaims whole or not at all)."""
    decided = _reclaim_pass(borrowed=4, group_size=3)
    assert decided.evictions == ()
    assert decided.admissions == ()


def test_no_second_reclaim_while_the_groups_victims_terminate() -> None:
    decided = _reclaim_pass(borrowed=4, group_size=2, terminating=2)
    assert decided.evictions == ()
