"""The agent's loop: discover, label, wait for the interval or SIGHUP, again.

Called by ``gpufair agent`` (:mod:`gpufair.cli.agent`), which builds the discoverer and the
publisher; both are plain callables here so the loop is tested without a GPU or a cluster.

What happens when something goes wrong:

- no NVIDIA GPU: exit 1 with a message saying what was tried, or, with ``--idle-without-gpu``,
  log it once and keep re-checking (a driver installed later is picked up). Labels already on
  the Node are left alone either way: a passing driver fault must not wipe them;
- the topology or the API cannot be reached: ``--once`` exits 1; the loop logs and retries
  after :data:`RETRY_SECONDS` (or the interval, if shorter), keeping the last labels;
- SIGHUP re-checks at once; SIGTERM and SIGINT stop the loop cleanly (exit 0).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from types import FrameType

from gpufair.agent import discovery, publisher
from gpufair.core import labels

logger = logging.getLogger(__name__)

RETRY_SECONDS = 30.0
"""Delay before retrying a failed check in the loop (discovery or API error)."""


class ExitCode(enum.IntEnum):
    """The CLI's exit codes (see :mod:`gpufair.cli`)."""

    OK = 0
    FAILURE = 1
    USAGE = 2


@dataclasses.dataclass(frozen=True, slots=True)
class Options:
    """How the loop runs: ``interval`` seconds between checks, or ``once``."""

    interval: float
    once: bool = False
    idle_without_gpu: bool = False


class Wakeup:
    """Ends the wait between checks: SIGHUP asks for a re-check, SIGTERM/SIGINT for a stop.

    Signal handlers only set flags; the loop logs what woke it (logging from a handler could
    interleave with a log call it interrupted).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self.stopping = False
        self.woken_by: str | None = None

    def recheck(self, reason: str | None = None) -> None:
        self.woken_by = reason
        self._event.set()

    def stop(self, reason: str | None = None) -> None:
        self.stopping = True
        self.woken_by = reason
        self._event.set()

    def wait(self, timeout: float) -> str | None:
        """Sleep up to ``timeout`` seconds, less when woken; returns what woke it, if known."""
        self._event.wait(timeout)
        self._event.clear()
        reason, self.woken_by = self.woken_by, None
        return reason

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Route SIGHUP, SIGTERM and SIGINT here while the loop runs (main thread only)."""

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self.recheck(signal.Signals(signum).name)

        def on_stop(signum: int, _frame: FrameType | None) -> None:
            self.stop(signal.Signals(signum).name)

        previous = {
            signal.SIGHUP: signal.signal(signal.SIGHUP, on_hup),
            signal.SIGTERM: signal.signal(signal.SIGTERM, on_stop),
            signal.SIGINT: signal.signal(signal.SIGINT, on_stop),
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


Discover = Callable[[], discovery.Discovery]
Publish = Callable[[Mapping[str, str]], Mapping[str, str | None]]


def run(*, discover: Discover, publish: Publish, options: Options, wakeup: Wakeup) -> ExitCode:
    """Check, publish and wait until stopped (or once); returns the process exit code."""
    first = True
    idling = False
    while not wakeup.stopping:
        delay = options.interval
        try:
            check(discover=discover, publish=publish)
            idling = False
        except discovery.NoGpuError as error:
            if not options.idle_without_gpu:
                logger.error(
                    "no NVIDIA GPU on this node (%s); run with --idle-without-gpu to idle "
                    "on nodes without GPUs instead of exiting",
                    error,
                )
                return ExitCode.FAILURE
            if not idling:
                logger.warning(
                    "no NVIDIA GPU on this node (%s); idling, re-checking every %gs and on SIGHUP",
                    error,
                    options.interval,
                )
            idling = True
        except discovery.TopologyFileError as error:
            logger.error("cannot read the topology file %s", error)
            if first or options.once:
                return ExitCode.USAGE
            delay = min(options.interval, RETRY_SECONDS)
        except (discovery.DiscoveryError, publisher.PublishError) as error:
            logger.error("%s", error)
            if options.once:
                return ExitCode.FAILURE
            delay = min(options.interval, RETRY_SECONDS)
            logger.info("retrying in %gs", delay)
        if options.once:
            return ExitCode.OK
        first = False
        woken_by = wakeup.wait(delay)
        if woken_by is not None:
            action = "stopping" if wakeup.stopping else "re-checking the topology now"
            logger.info("%s: %s", woken_by, action)
    return ExitCode.OK


def check(*, discover: Discover, publish: Publish) -> Mapping[str, str | None]:
    """Discover the topology once and publish its labels; returns the applied patch."""
    found = discover()
    for note in found.notes:
        logger.info("skipped a source: %s", note)
    desired = labels.to_labels(found.topology)
    patch = publish(desired)
    removed = sum(1 for value in patch.values() if value is None)
    if patch:
        logger.info(
            "%d GPUs (from %s): set %d labels, removed %d stale",
            len(found.topology.gpus),
            found.source,
            len(patch) - removed,
            removed,
        )
    else:
        logger.info("%d GPUs (from %s): labels up to date", len(found.topology.gpus), found.source)
    return patch
