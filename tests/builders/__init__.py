"""Readable builders for test inputs, one module per domain (``topology``, ``quota`` …)."""
