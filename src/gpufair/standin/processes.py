"""Real subprocesses for the demo and the end-to-end suite: started, awaited, logged, stopped.

Every component (the stand-in API server, ``gpufair operator``, ``gpufair extender``, a kopf
operator file) runs as its own process with its output in a log file, so a failure shows what
each process said (``gpufair demo`` prints the log paths, ``e2e/conftest.py`` the log tails), and
a restart mid-scenario is a real restart. ``e2e/harness/processes.py`` re-exports this module.

Readiness is either an HTTP URL answering 2xx or a regular expression appearing in the log; a
process that exits or misses its deadline fails with the tail of its log in the exception.
Stopping sends SIGTERM, waits, then SIGKILLs: components must shut down cleanly on SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

import httpx


class ComponentError(RuntimeError):
    """A component did not become ready, or died; the message ends with its log tail."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for ``--port`` arguments)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def gpufair_command() -> list[str]:
    """The ``gpufair`` console script of this environment (``.venv/bin/gpufair``)."""
    script = pathlib.Path(sys.executable).parent / "gpufair"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gpufair"]


def tail(path: pathlib.Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log file)"
    return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass
class Component:
    """A running subprocess with its log; ``stop()`` and ``restart()`` it as a test needs."""

    name: str
    argv: tuple[str, ...]
    log_path: pathlib.Path
    env: dict[str, str]
    cwd: pathlib.Path
    ready_url: str | None = None
    ready_log: str | None = None
    ready_timeout: float = 30.0
    process: subprocess.Popen[bytes] | None = None
    _log_offset: int = 0

    def start(self) -> Component:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            banner = f"==== {time.strftime('%H:%M:%S')} start: {' '.join(self.argv)}\n"
            log.write(banner.encode())
            self._log_offset += len(banner)
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,  # a Ctrl-C in the terminal does not hit it twice
            )
        self.wait_ready()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self, *, since_start: bool = True) -> str:
        """The log text (of the current run only, unless ``since_start=False``)."""
        try:
            data = self.log_path.read_bytes()
        except FileNotFoundError:
            return ""
        return data[self._log_offset if since_start else 0 :].decode(errors="replace")

    def wait_for_log(self, pattern: str, *, timeout: float = 30.0) -> re.Match[str]:
        """Wait until ``pattern`` (a regular expression) appears in this run's log."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.logs())
            if found:
                return found
            if not self.running():
                raise self._error(f"exited with {self._returncode()} before logging {pattern!r}")
            if time.monotonic() > deadline:
                raise self._error(f"did not log {pattern!r} within {timeout:.0f} s")
            time.sleep(0.05)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        if self.ready_log is not None:
            self.wait_for_log(self.ready_log, timeout=self.ready_timeout)
        if self.ready_url is None:
            return
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not self.running():
                raise self._error(
                    f"exited with {self._returncode()} before {self.ready_url} answered"
                )
            try:
                answer = httpx.get(self.ready_url, timeout=1.0)
                if answer.is_success:
                    return
                last = f"HTTP {answer.status_code}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.05)
        self.stop()
        raise self._error(
            f"{self.ready_url} not ready within {self.ready_timeout:.0f} s (last: {last})"
        )

    def stop(self, *, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
                with self.log_path.open("ab") as log:
                    log.write(f"==== killed after {timeout:.0f} s without exiting\n".encode())
        return self.process.returncode

    def restart(self) -> Component:
        self.stop()
        return self.start()

    def _returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def _error(self, what: str) -> ComponentError:
        return ComponentError(f"{self.name} {what}; log {self.log_path}:\n{tail(self.log_path)}")


def start(
    argv: Sequence[str],
    *,
    name: str,
    log_dir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    ready_log: str | None = None,
    ready_timeout: float = 30.0,
    cwd: pathlib.Path | None = None,
) -> Component:
    """Start ``argv`` and wait until it is ready (see the module docstring)."""
    return prepare(
        argv,
        name=name,
        log_dir=log_dir,
        env=env,
        ready_url=ready_url,
        ready_log=ready_log,
        ready_timeout=ready_timeout,
        cwd=cwd,
    ).start()


def prepare(
    argv: Sequence[str],
    *,
    name: str,
    log_dir: pathlib.Path,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
    ready_log: str | None = None,
    ready_timeout: float = 30.0,
    cwd: pathlib.Path | None = None,
) -> Component:
    """The component, not started yet: a caller that must stop it even when its start is
    interrupted (Ctrl-C during the readiness wait) keeps it before calling ``start()``."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    return Component(
        name=name,
        argv=tuple(argv),
        log_path=log_dir / f"{safe}.log",
        env=full_env,
        cwd=cwd or pathlib.Path.cwd(),
        ready_url=ready_url,
        ready_log=ready_log,
        ready_timeout=ready_timeout,
    )
