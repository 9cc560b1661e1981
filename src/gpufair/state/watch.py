"""List+watch loops that keep a :class:`~gpufair.state.cache.ClusterCache` current.

One daemon thread per kind: list (replacing everything the cache held of that kind), then
watch from the list's resourceVersion, resuming after each server-side timeout. An expired
version (HTTP 410) or any error (disconnect, API server restart) leads to a fresh list, after a
short pause for errors, so the cache converges to the API server's state without a restart.

Every event, bookmark (watches ask for them: the API server sends one about once a minute on
a quiet watch) and cleanly ended watch tells the cache it *heard* from the API server, so a
watch that went silent (the API server unreachable, a connection stuck) shows up as staleness
(:meth:`gpufair.state.cache.ClusterCache.stale`) rather than as a quiet cluster.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from gpufair.state import cache

log = logging.getLogger(__name__)

_QUICK_END_SECONDS = 0.5


class GoneError(Exception):
    """Raised by a source when the watch's resourceVersion expired (HTTP 410)."""


class Source(Protocol):
    """Where objects come from (:class:`gpufair.state.kube.KubeClient`, or a test double)."""

    def list(self, kind: cache.Kind) -> tuple[list[dict[str, Any]], str]: ...

    def watch(
        self, kind: cache.Kind, *, resource_version: str, timeout_seconds: int
    ) -> Iterator[tuple[str, dict[str, Any]]]: ...


def _version(obj: dict[str, Any], default: str) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or default)


class Watcher:
    """Feeds the cache from a :class:`Source` in background threads."""

    def __init__(
        self,
        state: cache.ClusterCache,
        source: Source,
        *,
        kinds: Iterable[cache.Kind] = tuple(cache.Kind),
        timeout_seconds: int = 300,
        backoff_seconds: float = 1.0,
        gone_errors: tuple[type[BaseException], ...] = (GoneError,),
        on_synced: Callable[[], None] | None = None,
    ) -> None:
        self._cache = state
        self._source = source
        self._kinds = tuple(kinds)
        self._timeout = timeout_seconds
        self._backoff = backoff_seconds
        self._gone = gone_errors
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.relists: dict[cache.Kind, int] = dict.fromkeys(self._kinds, 0)
        self._on_synced = on_synced
        self._synced_once = threading.Event()

    def start(self) -> None:
        for kind in self._kinds:
            thread = threading.Thread(
                target=self.run, args=(kind,), name=f"gpufair-watch-{kind}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 1.0) -> None:
        """Stop every thread, waiting at most ``timeout`` seconds in all (not per thread:
        threads blocked in a watch read end together, and a shutdown must not take one
        timeout per kind)."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self, kind: cache.Kind) -> None:
        """List and watch ``kind`` until :meth:`stop`."""
        failures = 0
        while not self._stop.is_set():
            relists = self.relists[kind]
            try:
                self.sync(kind)
            except self._gone as exc:
                log.info("%s watch expired (%s); re-listing", kind, exc)
            except Exception as exc:
                listed = self.relists[kind] != relists
                failures = 1 if listed else failures + 1
                self._log_failure(kind, exc, failures)
                self._stop.wait(self._backoff)

    @staticmethod
    def _log_failure(kind: cache.Kind, exc: Exception, failures: int) -> None:
        """The first failure in a row with its traceback, the rest one line each: an API
        server that is down for minutes must not fill the log with the same stack."""
        if failures == 1:
            log.exception("%s list/watch failed; re-listing", kind)
        else:
            log.warning(
                "%s list/watch failed again (%d in a row): %s; re-listing", kind, failures, exc
            )

    def sync(self, kind: cache.Kind) -> None:
        """One list followed by watches until the source raises or the watcher stops."""
        items, version = self._source.list(kind)
        self._cache.replace(kind, items)
        self.relists[kind] += 1
        if self._cache.synced and not self._synced_once.is_set():
            self._synced_once.set()
            if self._on_synced is not None:
                self._on_synced()
        while not self._stop.is_set():
            started = time.monotonic()
            events = 0
            for event, obj in self._source.watch(
                kind, resource_version=version, timeout_seconds=self._timeout
            ):
                if self._stop.is_set():
                    return
                events += 1
                self._cache.heard(kind)
                version = _version(obj, version)
                if event in ("ADDED", "MODIFIED"):
                    self._cache.upsert(kind, obj)
                elif event == "DELETED":
                    self._cache.delete(kind, obj)
            self._cache.heard(kind)  # the server ended the watch itself: it is there
            if not events and time.monotonic() - started < _QUICK_END_SECONDS:
                # A server that ends empty watches at once would make this loop spin.
                self._stop.wait(self._backoff)
