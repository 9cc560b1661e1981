"""One APIRouter per file; :data:`ROUTERS` is the list the app factory includes."""

from __future__ import annotations

from gpufair.extender.routes import bind, filter, health, preempt, prioritize

ROUTERS = (health.router, filter.router, prioritize.router, preempt.router, bind.router)
