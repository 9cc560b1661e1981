"""Serve an ASGI app (FastAPI) on a free localhost port in a thread, for fakes in tests.

with apps.serve(app) as url:   # http://127.0.0.1:PORT
    ...
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from e2e.harness import processes


@contextlib.contextmanager
def serve(app: Any, *, timeout: float = 10.0) -> Iterator[str]:
    port = processes.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name=f"fake-app-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the app did not start on port {port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
