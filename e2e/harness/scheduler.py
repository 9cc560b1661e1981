"""The scheduler driver (kube-scheduler v1.36 against the extender) lives in the package, shared
with ``gpufair demo``: :mod:`gpufair.demo.scheduler`. Re-exported here for the e2e suite."""

from gpufair.demo.scheduler import (
    EVENT_NOTE_LIMIT,
    NOT_READY_TAINT,
    SCHEDULER_NAME,
    TERMINAL_PHASES,
    Attempt,
    ExtenderError,
    Preemption,
    SchedulerDriver,
    fit_error,
)

__all__ = [
    "EVENT_NOTE_LIMIT",
    "NOT_READY_TAINT",
    "SCHEDULER_NAME",
    "TERMINAL_PHASES",
    "Attempt",
    "ExtenderError",
    "Preemption",
    "SchedulerDriver",
    "fit_error",
]
