"""Job traces: read a Philly-format CSV into submit-ordered :class:`TraceJob` values.

The simulator's CLI and the tests both build traces through this module; the tests use
:func:`from_rows` with hand-made rows, the CLI uses :func:`load` on the shared Philly trace.
The Philly log is not sorted by submit time and its timestamps are naive local strings, so
every trace is sorted here, once, and times become seconds since the window start.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import pathlib
from collections.abc import Iterable

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
REQUIRED_COLUMNS = ("timestamp", "duration", "num_gpus", "cluster")


class TraceError(ValueError):
    """A trace file that cannot be read; the message names the file, line and field."""


@dataclasses.dataclass(frozen=True, slots=True)
class TraceJob:
    """One job as the trace records it: who, when, how many GPUs, for how long."""

    job_id: int
    """Position in submit order (0-based), stable for a given trace and window."""
    tenant: str
    submit: float
    """Seconds since the trace's origin (the start of the warm-up, else of the window)."""
    duration: float
    """Seconds of run time at the best placement (the trace's duration)."""
    gpus: int


@dataclasses.dataclass(frozen=True, slots=True)
class Trace:
    """Jobs in submit order, with the wall-clock origin their ``submit`` times count from.

    Jobs submitted before ``measure_from`` (seconds) are warm-up: they load the cluster the
    measured jobs find, as the jobs submitted before a window did in reality, but the figures
    count only the jobs and time from ``measure_from`` on.
    """

    jobs: tuple[TraceJob, ...]
    origin: datetime.datetime
    source: str
    measure_from: float = 0.0

    @property
    def span(self) -> float:
        """Seconds from the origin to the last submission."""
        return self.jobs[-1].submit if self.jobs else 0.0

    @property
    def measured(self) -> tuple[TraceJob, ...]:
        """The jobs the figures count (submitted from ``measure_from`` on)."""
        return tuple(job for job in self.jobs if job.submit >= self.measure_from)

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(sorted({job.tenant for job in self.jobs}))

    @property
    def gpu_seconds(self) -> float:
        return sum(job.gpus * job.duration for job in self.jobs)


def parse_time(text: str) -> datetime.datetime:
    """Parse a trace or CLI time: ``YYYY-MM-DD`` or ``YYYY-MM-DD HH:MM:SS`` (naive)."""
    text = text.strip()
    for fmt in (TIMESTAMP_FORMAT, "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise ValueError(f"invalid time {text!r}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM:SS'")


@dataclasses.dataclass(frozen=True, slots=True)
class _Row:
    submitted: datetime.datetime
    duration: float
    gpus: int
    tenant: str


def load(
    path: pathlib.Path,
    *,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    warmup: datetime.timedelta = datetime.timedelta(0),
) -> Trace:
    """Read a Philly-format CSV; keep jobs submitted in ``[start - warmup, end)``; sort them.

    With ``start``, the jobs of the ``warmup`` before it are kept as warm-up (see :class:`Trace`).
    """
    first = None if start is None else start - warmup
    rows: list[_Row] = []
    try:
        handle = path.open(newline="")
    except OSError as error:
        raise TraceError(f"{path}: cannot open: {error.strerror}") from error
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise TraceError(f"{path}: missing column(s) {', '.join(missing)}")
        for line, record in enumerate(reader, start=2):
            if not any((value or "").strip() for value in record.values()):
                continue
            row = _parse_row(record, where=f"{path}:{line}")
            if (first is None or row.submitted >= first) and (end is None or row.submitted < end):
                rows.append(row)
    built = _build(rows, origin=first, source=str(path))
    if start is None or first is None:
        return built
    return dataclasses.replace(built, measure_from=(start - first).total_seconds())


def _parse_row(record: dict[str, str], *, where: str) -> _Row:
    try:
        submitted = parse_time(record["timestamp"])
    except ValueError as error:
        raise TraceError(f"{where}: timestamp: {error}") from error
    try:
        duration = float(record["duration"])
    except ValueError as error:
        raise TraceError(f"{where}: duration: not a number: {record['duration']!r}") from error
    try:
        gpus = int(float(record["num_gpus"]))
    except ValueError as error:
        raise TraceError(f"{where}: num_gpus: not a number: {record['num_gpus']!r}") from error
    if duration < 0:
        raise TraceError(f"{where}: duration: negative ({duration})")
    if gpus < 1:
        raise TraceError(f"{where}: num_gpus: must be at least 1 (got {gpus})")
    tenant = record["cluster"].strip()
    if not tenant:
        raise TraceError(f"{where}: cluster: empty tenant")
    return _Row(submitted=submitted, duration=duration, gpus=gpus, tenant=tenant)


def _build(rows: list[_Row], *, origin: datetime.datetime | None, source: str) -> Trace:
    rows.sort(key=lambda row: row.submitted)
    if origin is None:
        origin = rows[0].submitted if rows else datetime.datetime(1970, 1, 1)
    jobs = tuple(
        TraceJob(
            job_id=index,
            tenant=row.tenant,
            submit=(row.submitted - origin).total_seconds(),
            duration=row.duration,
            gpus=row.gpus,
        )
        for index, row in enumerate(rows)
    )
    return Trace(jobs=jobs, origin=origin, source=source)


def from_rows(rows: Iterable[tuple[str, float, float, int]], *, source: str = "<rows>") -> Trace:
    """Build a trace from ``(tenant, submit_seconds, duration_seconds, gpus)`` tuples (tests)."""
    origin = datetime.datetime(2017, 1, 1)
    parsed = [
        _Row(
            submitted=origin + datetime.timedelta(seconds=submit),
            duration=duration,
            gpus=gpus,
            tenant=tenant,
        )
        for tenant, submit, duration, gpus in rows
    ]
    return _build(parsed, origin=origin, source=source)
