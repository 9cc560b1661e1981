"""Filter's split of the candidates, written as C-level passes over shape ids (issue 16), says of
every node what a node-by-node reading of its shape's verdict says, in the candidates' order."""

from __future__ import annotations

from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

from gpufair.core import placement, topology
from gpufair.extender import verbs

REASONS = ("2 free GPUs, 4 requested", "node is in no GPUPool", "tenant t1 is at its limit")

VERDICTS = st.one_of(
    st.builds(
        lambda score: verbs.Verdict(
            choice=placement.Choice(gpus=(0,), level=topology.LinkLevel.SELF, score=score),
            score=score,
        ),
        st.integers(0, 10),
    ),
    st.builds(
        lambda reason, hard: verbs.Verdict(reason=reason, unresolvable=hard),
        st.sampled_from(REASONS),
        st.booleans(),
    ),
)


class _Judged:
    """What ``_filter_nodes`` asks of its judge: the candidates already grouped by shape."""

    def __init__(self, grouped: list[tuple[list[str], list[int], dict[int, verbs.Verdict]]]):
        self.grouped = grouped
        self.snapshot = None
        self.ask = verbs.PodAsk(uid="u", namespace="a", name="p", requests={})


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    verdicts=st.dictionaries(st.integers(0, 8), VERDICTS, min_size=1, max_size=6),
    count=st.integers(0, 25),
)
def test_filter_splits_the_candidates_as_their_shapes_verdicts_say(
    data: st.DataObject, verdicts: dict[int, verbs.Verdict], count: int
) -> None:
    candidates = [f"n{index}" for index in range(count)]
    ids = data.draw(st.lists(st.sampled_from(sorted(verdicts)), min_size=count, max_size=count))
    present = {shape: verdicts[shape] for shape in ids}
    judge = cast(verbs.Judge, _Judged([(candidates, ids, present)]))

    outcome = verbs._filter_nodes(judge, candidates)

    of = dict(zip(candidates, (present[shape] for shape in ids), strict=True))
    assert outcome.passed == [name for name, verdict in of.items() if verdict.fits]
    failed = {n: v.reason for n, v in of.items() if not v.fits and not v.unresolvable}
    unresolvable = {n: v.reason for n, v in of.items() if v.unresolvable}
    assert list(outcome.failed.items()) == list(failed.items())
    assert list(outcome.unresolvable.items()) == list(unresolvable.items())


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    verdicts=st.dictionaries(st.integers(0, 8), VERDICTS, min_size=1, max_size=6),
    count=st.integers(0, 25),
)
def test_prioritize_scores_each_candidate_with_its_shapes_score(
    data: st.DataObject, verdicts: dict[int, verbs.Verdict], count: int
) -> None:
    candidates = [f"n{index}" for index in range(count)]
    ids = data.draw(st.lists(st.sampled_from(sorted(verdicts)), min_size=count, max_size=count))
    present = {shape: verdicts[shape] for shape in ids}
    judge = cast(verbs.Judge, _Judged([(candidates, ids, present)]))

    scores = verbs.prioritize(judge, candidates)

    by_host = {
        host: scores.score_of[key] for host, key in zip(scores.hosts, scores.keys, strict=True)
    }
    assert by_host == {
        name: verdicts[shape].choice.score if verdicts[shape].choice is not None else 0  # type: ignore[union-attr]
        for name, shape in zip(candidates, ids, strict=True)
    }
