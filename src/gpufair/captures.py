"""Real ``nvidia-smi topo -m`` captures on disk, read into node topologies: written once here.

The benchmarks (:mod:`gpufair.bench`), the demo's cluster and the stand-in's GPU nodes all build
nodes from captures such as ``../shared/data/topology/*.txt``, parsed with the node agent's own
path (``topology_matrix.parse`` -> ``topology.from_matrix``). This module is the file side of
that path; the parsing stays in :mod:`gpufair.core`.
"""

from __future__ import annotations

import pathlib

import gpufair
from gpufair.core import topology, topology_matrix

SHARED_TOPOLOGY = pathlib.Path("shared", "data", "topology")
"""Where the captures live relative to the directory that holds the checkout."""


class CaptureError(ValueError):
    """A capture that is missing or that the agent's parser refuses, named by its path."""


def default_dir() -> pathlib.Path:
    """``../shared/data/topology`` beside the project checkout: found from the source tree of an
    editable install, else from the working directory. It may not exist (an installed wheel);
    callers that need it say so and take a directory argument instead."""
    beside_source = pathlib.Path(gpufair.__file__).resolve().parents[3] / SHARED_TOPOLOGY
    if beside_source.is_dir():
        return beside_source
    return pathlib.Path.cwd().resolve().parent / SHARED_TOPOLOGY


def load(path: pathlib.Path) -> topology.NodeTopology:
    """The topology of one capture; :class:`CaptureError` names the file when it cannot."""
    try:
        text = path.read_text()
    except OSError as error:
        raise CaptureError(f"topology capture {path}: {error.strerror or error}") from None
    try:
        return topology.from_matrix(topology_matrix.parse(text))
    except (topology_matrix.TopologyParseError, ValueError) as error:
        raise CaptureError(f"topology capture {path}: {error}") from None


def load_dir(directory: pathlib.Path, *, gpus: int = 8) -> dict[str, topology.NodeTopology]:
    """Every capture of ``gpus`` GPUs in ``directory`` that parses, by file stem (the others,
    AMD's ``rocm-smi`` output among them, are skipped)."""
    found: dict[str, topology.NodeTopology] = {}
    for path in sorted(directory.glob("*.txt")):
        try:
            parsed = load(path)
        except CaptureError:
            continue
        if len(parsed.gpus) == gpus:
            found[path.stem] = parsed
    if not found:
        raise FileNotFoundError(f"no {gpus}-GPU nvidia-smi topo -m captures in {directory}")
    return found
