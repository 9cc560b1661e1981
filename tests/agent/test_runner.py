"""The agent's loop: publishes on every check, retries failures, idles or exits without a GPU."""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import threading
from collections.abc import Callable, Mapping

import pytest
from tests.builders.topology import node

from gpufair.agent import discovery, publisher, runner
from gpufair.core import labels, topology

TWO_GPUS = node(2, islands=[[0, 1]], numa=[0, 0])
FOUR_GPUS = node(4, numa=[0, 0, 1, 1])
FOREVER = 3600.0


class Script:
    """A discoverer that plays its steps (a topology or an exception) without waiting between
    them, and stops the loop after the last one."""

    def __init__(self, steps: list[topology.NodeTopology | Exception], wakeup: runner.Wakeup):
        self._steps = list(steps)
        self._wakeup = wakeup
        self.calls = 0

    def __call__(self) -> discovery.Discovery:
        step = self._steps[self.calls]
        self.calls += 1
        if self.calls == len(self._steps):
            self._wakeup.stop()
        else:
            self._wakeup.recheck()
        if isinstance(step, Exception):
            raise step
        return discovery.Discovery(topology=step, source=discovery.Source.NVML)


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.published: list[dict[str, str]] = []
        self._failures = failures

    def __call__(self, desired: Mapping[str, str]) -> Mapping[str, str | None]:
        if self._failures:
            self._failures -= 1
            raise publisher.PublishError("cannot patch node 'n1': HTTP 503 Service Unavailable")
        self.published.append(dict(desired))
        return dict(desired)


def _run(
    steps: list[topology.NodeTopology | Exception],
    *,
    options: runner.Options,
    publish: Callable[[Mapping[str, str]], Mapping[str, str | None]] | None = None,
) -> tuple[runner.ExitCode, Script, Recorder]:
    wakeup = runner.Wakeup()
    script = Script(steps, wakeup)
    recorder = Recorder()
    code = runner.run(discover=script, publish=publish or recorder, options=options, wakeup=wakeup)
    return code, script, recorder


def test_once_publishes_the_labels_of_the_topology() -> None:
    code, script, recorder = _run([TWO_GPUS], options=runner.Options(FOREVER, once=True))
    assert code is runner.ExitCode.OK
    assert script.calls == 1
    assert recorder.published == [labels.to_labels(TWO_GPUS)]


def test_loop_publishes_every_check_until_stopped() -> None:
    code, _, recorder = _run([TWO_GPUS, FOUR_GPUS], options=runner.Options(FOREVER))
    assert code is runner.ExitCode.OK
    assert recorder.published == [labels.to_labels(TWO_GPUS), labels.to_labels(FOUR_GPUS)]


def test_no_gpu_exits_1_and_says_how_to_idle(caplog: pytest.LogCaptureFixture) -> None:
    steps: list[topology.NodeTopology | Exception] = [discovery.NoGpuError("NVML found no GPU")]
    code, _, recorder = _run(steps, options=runner.Options(FOREVER))
    assert code is runner.ExitCode.FAILURE
    assert recorder.published == []
    assert "no NVIDIA GPU on this node (NVML found no GPU)" in caplog.text
    assert "--idle-without-gpu" in caplog.text


def test_idle_without_gpu_keeps_checking_and_starts_when_a_gpu_appears(
    caplog: pytest.LogCaptureFixture,
) -> None:
    no_gpu = discovery.NoGpuError("NVML did not start: Driver Not Loaded")
    code, _, recorder = _run(
        [no_gpu, no_gpu, TWO_GPUS], options=runner.Options(FOREVER, idle_without_gpu=True)
    )
    assert code is runner.ExitCode.OK
    assert recorder.published == [labels.to_labels(TWO_GPUS)]
    assert caplog.text.count("idling") == 1


@pytest.mark.parametrize(
    "failure",
    [
        discovery.DiscoveryError("NVML query failed: GPU is lost"),
        publisher.PublishError("cannot patch node 'n1': HTTP 503"),
    ],
    ids=["discovery", "api"],
)
def test_once_fails_on_an_error(failure: Exception) -> None:
    code, _, _ = _run([failure], options=runner.Options(FOREVER, once=True))
    assert code is runner.ExitCode.FAILURE


def test_loop_retries_after_a_failure() -> None:
    failure = discovery.DiscoveryError("NVML query failed: GPU is lost")
    code, _, recorder = _run([failure, TWO_GPUS], options=runner.Options(FOREVER))
    assert code is runner.ExitCode.OK
    assert recorder.published == [labels.to_labels(TWO_GPUS)]


def test_loop_retries_a_failed_patch() -> None:
    flaky = Recorder(failures=1)
    code, _, _ = _run([TWO_GPUS, TWO_GPUS], options=runner.Options(FOREVER), publish=flaky)
    assert code is runner.ExitCode.OK
    assert flaky.published == [labels.to_labels(TWO_GPUS)]


def test_a_bad_topology_file_at_start_is_a_usage_error() -> None:
    missing = discovery.TopologyFileError(pathlib.Path("topo.txt"), "No such file or directory")
    code, _, _ = _run([missing], options=runner.Options(FOREVER))
    assert code is runner.ExitCode.USAGE


def test_sighup_rechecks_and_sigterm_stops(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    wakeup = runner.Wakeup()
    checked = threading.Semaphore(0)
    recorder = Recorder()

    def discover() -> discovery.Discovery:
        checked.release()
        return discovery.Discovery(topology=TWO_GPUS, source=discovery.Source.NVML)

    def signal_from_outside() -> None:
        checked.acquire()
        os.kill(os.getpid(), signal.SIGHUP)
        checked.acquire()
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    sender = threading.Thread(target=signal_from_outside)
    with wakeup.signals():
        sender.start()
        code = runner.run(
            discover=discover, publish=recorder, options=runner.Options(FOREVER), wakeup=wakeup
        )
    sender.join()
    assert code is runner.ExitCode.OK
    assert len(recorder.published) == 2
    assert "SIGHUP: re-checking" in caplog.text
    assert signal.getsignal(signal.SIGTERM) is previous
