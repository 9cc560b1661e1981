"""List+watch loops: events reach the cache, an expired watch or an error leads to a re-list."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from tests.builders import kube

from gpufair.state import cache, watch


class ScriptedSource:
    """Lists and watch sessions played from a script; records the versions watches start at."""

    def __init__(self, lists: list[list[dict[str, Any]]], sessions: list[Any]) -> None:
        self.lists = lists
        self.sessions = sessions
        self.started_at: list[str] = []
        self.done = threading.Event()

    def list(self, kind: cache.Kind) -> tuple[list[dict[str, Any]], str]:
        return self.lists.pop(0), "100"

    def watch(
        self, kind: cache.Kind, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        self.started_at.append(resource_version)
        if not self.sessions:
            self.done.set()
            raise watch.GoneError("script over")
        session = self.sessions.pop(0)
        if isinstance(session, Exception):
            raise session
        yield from session


def versioned(obj: dict[str, Any], version: str) -> dict[str, Any]:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}


def test_events_after_a_list_reach_the_cache_and_the_watch_resumes_at_the_last_version() -> None:
    state = cache.ClusterCache(required_kinds=[cache.Kind.NODE])
    source = ScriptedSource(
        lists=[[kube.node("n1")]],
        sessions=[
            [("ADDED", versioned(kube.node("n2"), "101"))],
            [
                ("DELETED", versioned(kube.node("n1"), "102")),
                ("BOOKMARK", {"metadata": {"resourceVersion": "150"}}),
            ],
        ],
    )
    watcher = watch.Watcher(state, source, kinds=[cache.Kind.NODE])
    with contextlib.suppress(watch.GoneError):
        watcher.sync(cache.Kind.NODE)
    assert set(state.snapshot().nodes) == {"n2"}
    assert source.started_at == ["100", "101", "150"]
    assert state.synced


def test_gone_and_errors_lead_to_a_fresh_list() -> None:
    state = cache.ClusterCache(required_kinds=[cache.Kind.NODE])
    source = ScriptedSource(
        lists=[[kube.node("n1")], [kube.node("n3")], [kube.node("n4")], [kube.node("n5")]],
        sessions=[watch.GoneError("too old"), ConnectionResetError("api server restarted")],
    )
    watcher = watch.Watcher(state, source, kinds=[cache.Kind.NODE], backoff_seconds=0.01)
    watcher.start()
    assert source.done.wait(5)
    watcher.stop()
    assert watcher.relists[cache.Kind.NODE] >= 3
    assert set(state.snapshot().nodes) <= {"n4", "n5"}


def test_stop_waits_for_blocked_threads_at_most_its_timeout_in_all(monkeypatch: Any) -> None:
    """Threads blocked in a watch read do not make a shutdown take one timeout per kind."""
    clock = [1000.0]
    waited: list[float] = []

    class BlockedThread:
        def join(self, timeout: float | None = None) -> None:
            waited.append(timeout or 0.0)
            clock[0] += timeout or 0.0  # blocked: the whole timeout passes

    monkeypatch.setattr(watch.time, "monotonic", lambda: clock[0])
    watcher = watch.Watcher(cache.ClusterCache(), ScriptedSource([], []))
    monkeypatch.setattr(watcher, "_threads", [BlockedThread() for _ in cache.Kind])

    watcher.stop(timeout=1.0)

    assert watcher.stopped
    assert len(waited) == len(cache.Kind)
    assert sum(waited) == 1.0


def test_bookmarks_and_ended_watches_count_as_hearing_from_the_api_server() -> None:
    """A quiet watch is not a stale one: bookmarks (and a watch the server ended itself) keep
    the cache fresh; only silence past the bound makes it stale."""
    clock = [1000.0]
    state = cache.ClusterCache(
        required_kinds=[cache.Kind.NODE], staleness_seconds=10, clock=lambda: clock[0]
    )

    def bookmark_later() -> Iterator[tuple[str, dict[str, Any]]]:
        clock[0] += 9
        yield "BOOKMARK", {"metadata": {"resourceVersion": "150"}}
        clock[0] += 9

    source = ScriptedSource(lists=[[kube.node("n1")]], sessions=[bookmark_later()])
    watcher = watch.Watcher(state, source, kinds=[cache.Kind.NODE])
    with contextlib.suppress(watch.GoneError):
        watcher.sync(cache.Kind.NODE)
    assert state.silence() == {cache.Kind.NODE: 0.0}
    assert not state.stale()
    clock[0] += 10.5
    assert state.stale()
    assert "stale" in (state.not_ready() or "")
    assert not state.snapshot().synced


class FailingLists:
    """A source whose lists fail ``failures`` times, then succeed once, then fail again."""

    def __init__(self, failures: int) -> None:
        self.outcomes: list[Exception | None] = [ConnectionRefusedError("api down")] * failures
        self.outcomes += [None, ConnectionRefusedError("api down again")]
        self.done = threading.Event()

    def list(self, kind: cache.Kind) -> tuple[list[dict[str, Any]], str]:
        if not self.outcomes:
            self.done.set()
            raise ConnectionRefusedError("script over")
        outcome = self.outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return [kube.node("n1")], "100"

    def watch(
        self, kind: cache.Kind, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        raise ConnectionResetError("watch cut")
        yield  # pragma: no cover


def test_a_long_outage_logs_one_traceback_then_one_line_per_retry(caplog: Any) -> None:
    """The first failure in a row carries its stack; repeats do not; a failure after a
    successful list starts a new row."""
    state = cache.ClusterCache(required_kinds=[cache.Kind.NODE])
    source = FailingLists(failures=4)
    watcher = watch.Watcher(state, source, kinds=[cache.Kind.NODE], backoff_seconds=0.001)
    with caplog.at_level("WARNING", logger="gpufair.state.watch"):
        watcher.start()
        assert source.done.wait(5)
        watcher.stop()
    records = [r for r in caplog.records if "list/watch failed" in r.getMessage()]
    with_stack = [r.exc_info is not None for r in records]
    assert with_stack[:6] == [True, False, False, False, True, False]
    assert "4 in a row" in records[3].getMessage()
