"""One APIRouter per file; :data:`ROUTERS` is the list the app factory includes.

The verbs come first (the router tries routes in order, and kube-scheduler calls the verbs
thousands of times for every probe) and are :class:`~gpufair.extender.routes.wire.VerbRoute`
routes: listed in OpenAPI, served without FastAPI's per-request dependency machinery.
"""

from __future__ import annotations

from gpufair.extender.routes import bind, filter, health, preempt, prioritize

ROUTERS = (filter.router, prioritize.router, bind.router, preempt.router, health.router)
