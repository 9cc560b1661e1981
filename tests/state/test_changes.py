"""Which pods changed between two snapshots (``state.changes.PodIndex``): what the incremental
pass recomputes (issue 16). A change missed here would leave a stale answer in the cache."""

from __future__ import annotations

import dataclasses

import pytest

from gpufair.state import changes, model


def pod(uid: str) -> model.GpuPod:
    return model.GpuPod(
        namespace="a", name=uid, uid=uid, gpus=1, state=model.PodState.GATED, created_at=0.0
    )


A, B, C, D = pod("a"), pod("b"), pod("c"), pod("d")
B2 = dataclasses.replace(B)  # the same pod sent again by the watch: another object


@pytest.mark.parametrize(
    ("after", "changed", "removed"),
    [
        pytest.param((A, B, C), set(), set(), id="nothing"),
        pytest.param((A, B2, C), {"b"}, set(), id="replaced-in-place"),
        pytest.param((A, B, C, D), {"d"}, set(), id="appended"),
        pytest.param((A, C), set(), {"b"}, id="removed-in-the-middle"),
        pytest.param((A, C, D), {"d"}, {"b"}, id="removed-and-appended-same-length"),
        pytest.param((A, B2, C, D), {"b", "d"}, set(), id="replaced-and-appended"),
    ],
)
def test_changes_between_two_snapshots(
    after: tuple[model.GpuPod, ...], changed: set[str], removed: set[str]
) -> None:
    index = changes.PodIndex()
    assert index.update((A, B, C)) is None  # the first snapshot: nothing to compare with
    found = index.update(after)
    assert found is not None
    assert (set(found.changed), set(found.removed)) == (changed, removed)
    assert {uid: found.position[uid] for uid in found.position} == {
        p.uid: i for i, p in enumerate(after)
    }
    assert all(found.current(p.uid) is p for p in after)


@pytest.mark.parametrize(
    "after",
    [
        pytest.param((B, A, C), id="reordered"),
        pytest.param((A, B, B2), id="repeated-uid"),
    ],
)
def test_what_cannot_be_followed_is_computed_afresh(after: tuple[model.GpuPod, ...]) -> None:
    index = changes.PodIndex()
    index.update((A, B, C))
    assert index.update(after) is None


def test_repeated_uids_are_never_followed_even_when_nothing_changed() -> None:
    index = changes.PodIndex()
    index.update((A, B, B2))
    assert index.update((A, B, B2)) is None
