"""``gpufair demo`` as a user runs it: a real subprocess that starts its own stand-in cluster,
operator and extender, schedules a burst of pods of three tenants and prints a summary.

The demo needs no fixture of this suite (it starts its own stand-in); the tests check what a
user sees — every tenant gets pods scheduled, no GPU is held twice, the node agents confirm
what kubelet allocated and it is bind's choice, every pod the demo created as a user (no
scheduler name, no gate) came back gated by the operator's real webhook, ``/metrics`` of both
components answer while it runs — and that Ctrl-C stops it cleanly, leaving no process behind.
The Ctrl-C run has no ``openssl`` on its ``PATH``: the demo falls back to ``operator --dev``
with a one-line note.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence

import httpx
import pytest
from tests.packaging import wheel

from e2e.harness import nodes, processes, waiting
from gpufair.demo import cluster
from gpufair.standin import webhook

pytestmark = pytest.mark.e2e


class DemoProcess:
    """``gpufair demo ARGS`` with its output collected line by line as it comes."""

    def __init__(
        self,
        *args: str,
        workdir: pathlib.Path,
        env: dict[str, str] | None = None,
        gpufair: Sequence[str] | None = None,
        cwd: pathlib.Path = processes.REPO_ROOT,
    ) -> None:
        command = list(gpufair or processes.gpufair_command())
        self.process = subprocess.Popen(
            [*command, "demo", "--workdir", str(workdir), *args],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160", **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: object, into: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            into.append(line)

    def output(self) -> str:
        return "".join(self.stdout)

    def errors(self) -> str:
        return "".join(self.stderr)

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=10)
        return code

    def explain(self) -> str:
        return f"stdout:\n{self.output()[-4000:]}\nstderr:\n{self.errors()[-4000:]}"

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.wait(timeout=30)


@pytest.fixture
def demo_workdir(tmp_path: pathlib.Path) -> pathlib.Path:
    return tmp_path / "demo"


@pytest.fixture
def run_demo(demo_workdir: pathlib.Path) -> Iterator[list[DemoProcess]]:
    started: list[DemoProcess] = []
    yield started
    for demo in started:
        demo.kill()


def _descendants(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid``: pid -> its start time (to tell a reused pid)."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":
            continue
        parents[int(entry.name)] = (int(fields[1]), fields[19])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child, (parent, started) in parents.items():
            if parent == current and child not in found:
                found[child] = started
                frontier.append(child)
    return found


def _alive(pid: int, started: str) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0] != "Z" and fields[19] == started


def test_the_demo_schedules_every_tenant_and_exits_cleanly(
    run_demo: list[DemoProcess], demo_workdir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    summary_path = tmp_path / "summary.json"
    demo = DemoProcess(
        "--duration", "20", "--no-live", "--summary-json", str(summary_path), workdir=demo_workdir
    )
    run_demo.append(demo)
    code = demo.wait(timeout=240)
    assert code == 0, demo.explain()
    assert "Traceback" not in demo.errors() + demo.output(), demo.explain()
    output = demo.output()
    assert re.search(r"operator /metrics\s+http://127\.0\.0\.1:\d+/metrics", output), output
    assert re.search(r"extender /metrics\s+http://127\.0\.0\.1:\d+/metrics", output), output
    assert "summary after" in output, demo.explain()

    summary = json.loads(summary_path.read_text())
    rows = {row["tenant"]: row for row in summary["tenants"]}
    assert sorted(rows) == sorted(tenant.name for tenant in cluster.tenants())
    for tenant, row in rows.items():
        assert row["scheduled"] > 0, f"{tenant} got no pod scheduled: {row}"
        assert row["scheduled"] <= row["submitted"], row
        assert row["gpu_seconds_seen"] > 0, row
    assert summary["double_allocations"] == [], summary["double_allocations"]
    assert summary["pool"]["capacity"] == sum(8 for _ in cluster.NODES)
    # Every GPU node runs kubelet's device-manager stand-in behind the agent's proxy, and the
    # agent's reconciler confirms what kubelet allocated: the GPUs bind chose, every time.
    allocations = summary["allocations"]
    assert allocations["confirmed"] > 0, allocations
    assert allocations["confirmed"] <= allocations["bound"], allocations
    assert allocations["corrected"] == 0, (allocations, demo.explain())
    assert sum(row["confirmed"] for row in rows.values()) == allocations["confirmed"]
    assert re.search(r"Allocations confirmed by kubelet: [1-9]\d* of \d+ bound pods", output)
    # Placement: multi-GPU pods and the 8-GPU ones (a whole NVSwitch island) on one island, as
    # kubelet confirmed them; the figures, not a threshold (the run is too short to judge).
    islands = summary["islands"]
    assert islands["multi_gpu_placed"] == sum(row["multi_gpu_placed"] for row in rows.values())
    assert 0 <= islands["wide_one_island"] <= islands["wide_placed"], islands
    assert (
        f"Multi-GPU pods on one island: {islands['multi_gpu_one_island']} of"
        f" {islands['multi_gpu_placed']}; 8-GPU pods on one island:"
        f" {islands['wide_one_island']} of {islands['wide_placed']}"
    ) in output, output
    for tenant in rows:  # the summary table names every tenant
        assert re.search(rf"^\s*{tenant}\s+\d", output, re.MULTILINE), output

    # Admission: created as a user creates pods, gated by the operator's webhook (HTTPS).
    admission = summary["admission"]
    submitted = sum(row["submitted"] for row in rows.values())
    assert admission["pods_submitted"] == submitted > 0, admission
    if webhook.openssl() is None:  # the fallback: operator --dev, pods created already gated
        assert admission["mode"] == "dev", admission
        assert "running the operator with --dev" in output, output
    else:
        assert admission["mode"] == "webhook", (admission, demo.explain())
        assert re.search(r"admission webhook\s+https://127\.0\.0\.1:\d+ ", output), output
        assert admission["pods_gated_by_webhook"] == submitted, admission
        assert f"webhook gated {submitted} of the {submitted} pods" in output, output


def test_ctrl_c_stops_every_process_and_metrics_answer_while_it_runs(
    run_demo: list[DemoProcess], demo_workdir: pathlib.Path
) -> None:
    # Only the virtualenv's scripts on PATH: no openssl, so no webhook (the fallback).
    no_openssl = {"PATH": str(pathlib.Path(sys.executable).parent)}
    demo = DemoProcess("--duration", "120", "--no-live", workdir=demo_workdir, env=no_openssl)
    run_demo.append(demo)

    def running() -> bool:
        if demo.process.poll() is not None:
            raise AssertionError(f"the demo exited with {demo.process.returncode}")
        return re.search(r"^\[\s*\d+\.\ds\] ", demo.output(), re.MULTILINE) is not None

    waiting.wait_for(running, timeout=180, interval=0.2, what="the demo's first status lines")
    output = demo.output()
    notes = [line for line in output.splitlines() if "openssl is not installed" in line]
    assert len(notes) == 1, output
    assert "running the operator with --dev" in notes[0], output
    assert "admission webhook    none (operator --dev)" in output, output
    urls = re.findall(r"(?:operator|extender) /metrics\s+(http://127\.0\.0\.1:\d+/metrics)", output)
    assert len(urls) == 2, output
    for url in urls:
        answer = httpx.get(url, timeout=10)
        assert answer.status_code == 200, url
        assert "gpufair_" in answer.text, url

    children = _descendants(demo.process.pid)
    # the stand-in, the operator and the extender at least
    assert len(children) >= 3, (children, demo.explain())

    demo.process.send_signal(signal.SIGINT)
    code = demo.wait(timeout=120)
    assert code in (0, 130), demo.explain()
    assert "Traceback" not in demo.errors() + demo.output(), demo.explain()
    assert "all demo processes stopped" in demo.output(), demo.explain()
    leftovers = {pid for pid, started in children.items() if _alive(pid, started)}
    assert not leftovers, f"processes left running: {sorted(leftovers)}"
    for url in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)


def test_the_demo_runs_from_the_wheel_installed_with_the_demo_extra(
    run_demo: list[DemoProcess],
    demo_workdir: pathlib.Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """``pip install 'gpufair[demo]'`` into a fresh venv, then ``gpufair demo`` from a directory
    outside the checkout: the stand-in cluster starts from the installed package, the CRDs come
    from the models, the captures from ``--topology-dir``."""
    root = tmp_path_factory.mktemp("wheel")
    install = wheel.install(root, f"{wheel.build(root)}[demo]")
    outside = tmp_path_factory.mktemp("elsewhere")
    summary_path = outside / "summary.json"
    demo = DemoProcess(
        "--duration",
        "15",
        "--no-live",
        "--no-webhook",
        "--topology-dir",
        str(nodes.TOPOLOGY_DIR),
        "--summary-json",
        str(summary_path),
        workdir=demo_workdir,
        env={**wheel.clean_env(), "PYTHONUNBUFFERED": "1"},
        gpufair=[install.gpufair],
        cwd=outside,
    )
    run_demo.append(demo)
    code = demo.wait(timeout=240)
    assert code == 0, demo.explain()
    assert "Traceback" not in demo.errors() + demo.output(), demo.explain()
    summary = json.loads(summary_path.read_text())
    assert summary["pool"]["capacity"] == sum(8 for _ in cluster.NODES)
    scheduled = {row["tenant"]: row["scheduled"] for row in summary["tenants"]}
    assert sorted(scheduled) == sorted(tenant.name for tenant in cluster.tenants())
    assert all(count > 0 for count in scheduled.values()), scheduled
    banner = (demo_workdir / "standin.log").read_text().splitlines()[0]
    started_by = (
        re.escape(f"start: {install.venv}/bin/python") + r"\S* -m gpufair\.standin\.apiserver "
    )
    assert re.search(started_by, banner), banner
