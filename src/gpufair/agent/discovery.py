"""Which source the agent asks for the node's topology, and what "no GPU" means.

Called by :mod:`gpufair.agent.runner` on every check. ``auto`` asks NVML first and falls back to
``nvidia-smi topo -m`` when NVML cannot start or fails; either way the answer is one
:class:`~gpufair.core.topology.NodeTopology`, built the same way, so labels never depend on the
source. A node where neither source finds a GPU raises :class:`NoGpuError`, whose message says
what was tried.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
from collections.abc import Callable
from typing import Any

from gpufair.agent import nvml_reader, nvml_topology, smi
from gpufair.core import topology, topology_matrix


class Source(enum.StrEnum):
    """Where the topology comes from (``--source``; ``file`` is ``--from-file``)."""

    AUTO = "auto"
    NVML = "nvml"
    NVIDIA_SMI = "nvidia-smi"
    FILE = "file"


class NoGpuError(Exception):
    """The node has no NVIDIA GPU this agent can see."""


class DiscoveryError(Exception):
    """The node has GPUs, but their topology could not be read."""


class TopologyFileError(Exception):
    """The ``--from-file`` capture cannot be read; the message names the file (and line)."""

    def __init__(self, path: pathlib.Path, reason: str, *, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")
        self.path = path
        self.line = line
        self.reason = reason


@dataclasses.dataclass(frozen=True, slots=True)
class Discovery:
    """The node's topology and where it came from (``notes``: why a source was skipped)."""

    topology: topology.NodeTopology
    source: Source
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Discoverer:
    """Discovers the topology from one configured source; the seams are for tests."""

    source: Source = Source.AUTO
    from_file: pathlib.Path | None = None
    nvml: Any = None  # the pynvml module; None imports the real one
    run_smi: Callable[[], str] = smi.run_topo
    node_root: pathlib.Path = nvml_reader.SYS_NODE_ROOT

    def __call__(self) -> Discovery:
        if self.from_file is not None:
            return Discovery(topology=_from_file(self.from_file), source=Source.FILE)
        if self.source is Source.NVML:
            return _checked(self._nvml(), source=Source.NVML)
        if self.source is Source.NVIDIA_SMI:
            return _checked(self._smi(), source=Source.NVIDIA_SMI)
        try:
            return _checked(self._nvml(), source=Source.NVML)
        except (NoGpuError, DiscoveryError) as nvml_error:
            try:
                found = self._smi()
            except (NoGpuError, DiscoveryError) as smi_error:
                # "No GPU" only when neither source saw one; a GPU NVML saw but could not
                # describe is a discovery failure, whatever nvidia-smi says.
                both_none = isinstance(nvml_error, NoGpuError) and isinstance(smi_error, NoGpuError)
                failure = NoGpuError if both_none else DiscoveryError
                raise failure(f"{nvml_error}; {smi_error}") from smi_error
            return _checked(found, source=Source.NVIDIA_SMI, notes=(str(nvml_error),))

    def _nvml(self) -> topology.NodeTopology:
        try:
            facts = nvml_reader.read_facts(self.nvml, node_root=self.node_root)
        except nvml_reader.NvmlUnavailableError as error:
            raise NoGpuError(str(error)) from error
        except nvml_reader.NvmlQueryError as error:
            raise DiscoveryError(str(error)) from error
        if not facts.gpus:
            raise NoGpuError("NVML found no GPU")
        return nvml_topology.to_topology(facts)

    def _smi(self) -> topology.NodeTopology:
        try:
            text = self.run_smi()
        except smi.SmiUnavailableError as error:
            raise NoGpuError(str(error)) from error
        except smi.SmiError as error:
            raise DiscoveryError(str(error)) from error
        try:
            return smi.to_topology(text)
        except topology_matrix.TopologyParseError as error:
            raise DiscoveryError(
                f"cannot read the output of nvidia-smi topo -m: {error}"
            ) from error


def _checked(
    found: topology.NodeTopology, *, source: Source, notes: tuple[str, ...] = ()
) -> Discovery:
    if not found.gpus:
        raise NoGpuError(f"{source} found no GPU")
    return Discovery(topology=found, source=source, notes=notes)


def _from_file(path: pathlib.Path) -> topology.NodeTopology:
    """The topology of a capture given with ``--from-file``."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise TopologyFileError(path, error.strerror or str(error)) from error
    try:
        return smi.to_topology(text)
    except topology_matrix.TopologyParseError as error:
        raise TopologyFileError(path, error.reason, line=error.line) from error
