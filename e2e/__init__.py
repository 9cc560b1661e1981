"""End-to-end tests and their harness (a package so that ``e2e.harness`` is importable)."""
