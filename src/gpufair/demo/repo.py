"""Find the gpufair checkout the demo runs from, and the shared topology captures beside it.

``gpufair demo`` starts the stand-in API server from ``e2e/standin`` and applies the CRDs from
``crds/``; both live in the repository, not in the installed package. The demo therefore runs
from a checkout: the root is found from this package's location (an editable install, as
``make`` makes) or else from the working directory upwards.
"""

from __future__ import annotations

import pathlib

STANDIN_MAIN = pathlib.Path("e2e", "standin", "__main__.py")
CRDS = pathlib.Path("crds")
TOPOLOGY = pathlib.Path("..", "shared", "data", "topology")


class NotACheckoutError(RuntimeError):
    """No gpufair repository was found where the demo looked."""


def is_root(path: pathlib.Path) -> bool:
    return (path / STANDIN_MAIN).is_file() and (path / CRDS).is_dir()


def find_root(*, cwd: pathlib.Path | None = None) -> pathlib.Path:
    """The repository root: from the package's own path first, then from ``cwd`` upwards."""
    here = pathlib.Path(__file__).resolve()
    start = (cwd or pathlib.Path.cwd()).resolve()
    candidates = [*here.parents, start, *start.parents]
    for candidate in candidates:
        if is_root(candidate):
            return candidate
    raise NotACheckoutError(
        "gpufair demo runs from a checkout of the gpufair repository (it starts the stand-in"
        f" API server from {STANDIN_MAIN} and applies {CRDS}/); none found above {here.parent}"
        f" or {start}. Run it from the repository (make demo), or pass --repo PATH."
    )


def topology_dir(root: pathlib.Path) -> pathlib.Path:
    """``../shared/data/topology`` beside the repository: real ``nvidia-smi topo -m`` captures."""
    return (root / TOPOLOGY).resolve()
