"""gpufair's answer to GetPreferredAllocation, and the PodResources check."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpufair.core import allocation

GPU = [f"GPU-{index}" for index in range(8)]


def pod(name: str, *indices: int) -> allocation.Candidate:
    return allocation.Candidate(pod=f"team-a/{name}", devices=frozenset(GPU[i] for i in indices))


def ids(*indices: int) -> list[str]:
    return [GPU[i] for i in indices]


def split_pod(name: str, shares: list[int], *indices: int) -> allocation.Candidate:
    devices = frozenset(GPU[i] for i in indices)
    return allocation.Candidate(
        pod=f"team-a/{name}", devices=devices, parts=allocation.split(devices, shares)
    )


@pytest.mark.parametrize(
    ("candidates", "available", "must_include", "size", "expected"),
    [
        pytest.param(
            [pod("a", 4, 5, 6, 7)], ids(*range(8)), [], 4,
            allocation.Preference(allocation.Outcome.GPUFAIR, tuple(ids(4, 5, 6, 7)), "team-a/a"),
            id="the-one-pod-of-that-size",
        ),
        pytest.param(
            [pod("a", 0, 1), pod("b", 4, 5, 6, 7)], ids(*range(8)), [], 4,
            allocation.Preference(allocation.Outcome.GPUFAIR, tuple(ids(4, 5, 6, 7)), "team-a/b"),
            id="size-tells-pods-apart",
        ),
        pytest.param(
            [pod("a", 4, 5, 6, 7)], ids(0, 1, 2, 3, 4, 5, 6), [], 4,
            allocation.Preference(allocation.Outcome.NO_CANDIDATE),
            id="set-not-available",
        ),
        pytest.param(
            [pod("a", 2, 3)], ids(3, 4), ids(2), 2,
            allocation.Preference(allocation.Outcome.GPUFAIR, tuple(ids(2, 3)), "team-a/a"),
            id="must-include-counts-as-available",
        ),
        pytest.param(
            [pod("a", 3, 4)], ids(3, 4, 5), ids(2), 2,
            allocation.Preference(allocation.Outcome.NO_CANDIDATE),
            id="set-without-a-must-include-device",
        ),
        pytest.param(
            [pod("a", 0, 1), pod("b", 2, 3)], ids(*range(8)), [], 2,
            allocation.Preference(allocation.Outcome.AMBIGUOUS),
            id="two-pods-of-one-size",
        ),
        pytest.param(
            [], ids(*range(8)), [], 1,
            allocation.Preference(allocation.Outcome.NO_CANDIDATE),
            id="no-gpufair-pod",
        ),
        pytest.param(
            [split_pod("s", [2, 2], 4, 5, 6, 7)], ids(*range(8)), [], 2,
            allocation.Preference(allocation.Outcome.GPUFAIR, tuple(ids(4, 5)), "team-a/s"),
            id="first-container-gets-the-first-share",
        ),
        pytest.param(
            [split_pod("s", [2, 2], 4, 5, 6, 7)], ids(0, 1, 2, 3, 6, 7), [], 2,
            allocation.Preference(allocation.Outcome.GPUFAIR, tuple(ids(6, 7)), "team-a/s"),
            id="next-container-gets-the-share-still-free",
        ),
        pytest.param(
            [split_pod("s", [2, 2], 4, 5, 6, 7)], ids(*range(8)), [], 4,
            allocation.Preference(allocation.Outcome.NO_CANDIDATE),
            id="a-split-pod-is-never-offered-whole",
        ),
        pytest.param(
            [split_pod("s", [2, 2], 4, 5, 6, 7), pod("p", 0, 1)], ids(*range(8)), [], 2,
            allocation.Preference(allocation.Outcome.AMBIGUOUS),
            id="a-share-the-size-of-another-pod",
        ),
    ],
)  # fmt: skip
def test_prefer(
    candidates: list[allocation.Candidate],
    available: list[str],
    must_include: list[str],
    size: int,
    expected: allocation.Preference,
) -> None:
    got = allocation.prefer(candidates, available=available, must_include=must_include, size=size)
    assert got == expected


@given(
    sets=st.lists(st.frozensets(st.sampled_from(GPU), min_size=1), max_size=5),
    available=st.frozensets(st.sampled_from(GPU)),
    must_include=st.frozensets(st.sampled_from(GPU), max_size=2),
    size=st.integers(min_value=1, max_value=8),
)
def test_a_gpufair_answer_is_always_allocatable(
    sets: list[frozenset[str]], available: frozenset[str], must_include: frozenset[str], size: int
) -> None:
    candidates = [allocation.Candidate(f"ns/p{i}", s) for i, s in enumerate(sets)]
    got = allocation.prefer(candidates, available=available, must_include=must_include, size=size)
    if got.outcome is allocation.Outcome.GPUFAIR:
        assert len(got.devices) == size
        assert set(got.devices) <= available | must_include
        assert must_include <= set(got.devices)
        assert frozenset(got.devices) in sets
    else:
        assert got.devices == ()


@pytest.mark.parametrize(
    ("sizes", "size", "blocked"),
    [
        pytest.param([4], 4, True, id="same-size-waits"),
        pytest.param([4, 2], 1, False, id="other-sizes-do-not"),
        pytest.param([], 8, False, id="nothing-unconfirmed"),
    ],
)
def test_blocks_bind(sizes: list[int], size: int, blocked: bool) -> None:
    assert allocation.blocks_bind(unconfirmed_sizes=sizes, size=size) is blocked


@pytest.mark.parametrize(
    ("chosen", "allocated", "verdict", "unexpected", "missing"),
    [
        pytest.param({0, 1}, {0, 1}, allocation.Verdict.CONFIRMED, set(), set(), id="same"),
        pytest.param({0, 1}, {1, 2}, allocation.Verdict.MISMATCH, {2}, {0}, id="differs"),
        pytest.param(None, {5}, allocation.Verdict.UNRECORDED, {5}, set(), id="not-recorded"),
    ],
)
def test_check(
    chosen: set[int] | None,
    allocated: set[int],
    verdict: allocation.Verdict,
    unexpected: set[int],
    missing: set[int],
) -> None:
    got = allocation.check(
        chosen=None if chosen is None else frozenset(chosen), allocated=frozenset(allocated)
    )
    assert (got.verdict, got.unexpected, got.missing) == (verdict, unexpected, missing)


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        pytest.param([1, 3], [ids(0), ids(1, 2, 3)], id="in-order-lowest-first"),
        pytest.param([4], [ids(0, 1, 2, 3)], id="one-container"),
    ],
)
def test_split_cuts_binds_set_in_admission_order(
    shares: list[int], expected: list[list[str]]
) -> None:
    parts = allocation.split(ids(3, 1, 0, 2), shares)
    assert [sorted(part) for part in parts] == expected


@pytest.mark.parametrize("shares", [[1, 2], [2, 3], [4, 0], []])
def test_split_refuses_shares_that_do_not_add_up(shares: list[int]) -> None:
    with pytest.raises(ValueError, match="do not add up"):
        allocation.split(ids(0, 1, 2, 3), shares)


@st.composite
def split_pods(draw: st.DrawFn) -> tuple[frozenset[str], list[int]]:
    """A set of bind's and its containers' shares (a composition of its size)."""
    chosen = draw(st.sets(st.sampled_from(GPU), min_size=1))
    shares: list[int] = []
    left = len(chosen)
    while left:
        share = draw(st.integers(min_value=1, max_value=left))
        shares.append(share)
        left -= share
    return frozenset(chosen), shares


@given(split_pods())
def test_containers_admitted_in_order_get_exactly_binds_set(
    pod_and_shares: tuple[frozenset[str], list[int]],
) -> None:
    chosen, shares = pod_and_shares
    candidate = allocation.Candidate(
        pod="team-a/split", devices=chosen, parts=allocation.split(chosen, shares)
    )
    held: set[str] = set()
    for share in shares:
        answer = allocation.prefer(
            [candidate], available=sorted(set(GPU) - held), must_include=[], size=share
        )
        assert answer.outcome is allocation.Outcome.GPUFAIR
        assert len(answer.devices) == share
        assert not held & set(answer.devices), "a GPU given to two containers"
        held |= set(answer.devices)
    assert held == chosen


@pytest.mark.parametrize(
    ("waiting", "size", "shares", "blocked"),
    [
        pytest.param({2}, 2, (), True, id="same-size"),
        pytest.param({2}, 4, (2, 2), True, id="a-share-of-a-waiting-size"),
        pytest.param({4}, 4, (2, 2), False, id="split-pods-are-never-asked-whole"),
        pytest.param({1, 3}, 4, (), False, id="shares-of-other-sizes"),
        pytest.param({2}, 2, (2,), True, id="one-container-is-its-size"),
    ],
)
def test_bind_counts_the_sizes_kubelet_will_ask_for(
    waiting: set[int], size: int, shares: tuple[int, ...], blocked: bool
) -> None:
    assert allocation.blocks_bind(unconfirmed_sizes=waiting, size=size, shares=shares) is blocked
