"""A pytest plugin for the RBAC proof (``e2e/test_rbac_least_privilege.py``): its checks run
after every other e2e test of the session, whatever the order of collection, and know whether
the session ran the whole e2e suite.

Tests marked ``after_e2e`` are moved to the end. "Whole suite" means that every
``e2e/test_*.py`` file was collected and nothing was deselected (``-k``, ``-m``, ``--lf`` ...):
only then can "no rule unused" be judged; partial runs still check that every call was
allowed. Registered by ``e2e/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import pathlib

import pytest

E2E_DIR = pathlib.Path(__file__).resolve().parents[1]
MARKER = "after_e2e"
_WHOLE_RUN = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: runs after every other e2e test (the RBAC proof over the run)"
    )
    config.stash[_WHOLE_RUN] = True


def pytest_deselected(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.config.stash[_WHOLE_RUN] = False


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker(MARKER)]
    if last:
        rest = [item for item in items if not item.get_closest_marker(MARKER)]
        items[:] = rest + last
    collected = {item.path for item in items if E2E_DIR in item.path.parents}
    on_disk = set(E2E_DIR.glob("test_*.py"))
    if not on_disk <= collected:
        config.stash[_WHOLE_RUN] = False


def whole_e2e_run(config: pytest.Config) -> bool:
    """Every e2e test file was collected and no e2e test was deselected."""
    return config.stash.get(_WHOLE_RUN, False)
