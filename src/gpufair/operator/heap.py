"""Keep Python's cyclic garbage collector off the operator's long-lived state.

A pass at fleet scale allocates enough to trigger collections, and a full (oldest-generation)
collection walks every tracked object: the store, the pass cache and the last plan, over a
hundred thousand objects at 5,000 nodes, about a quarter of a pass's time (issue 16,
docs/operator.md). After each pass the survivors are frozen (``gc.freeze``: no collection walks
them again; reference counting still frees them). The state is almost free of reference
cycles, so little can pile up in the frozen set; every ``every`` passes it is thawed and
collected once anyway, off the pass.
"""

from __future__ import annotations

import gc


class Heap:
    """Call :meth:`after_pass` when a pass is done."""

    def __init__(self, *, every: int = 720) -> None:
        self._every = every
        self._passes = 0

    def after_pass(self) -> None:
        self._passes += 1
        if self._passes % self._every == 0:
            gc.unfreeze()
            gc.collect()
        gc.freeze()
