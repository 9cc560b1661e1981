"""Parser of the ``nvidia-smi topo -m`` matrix: text in, :class:`TopologyMatrix` out.

The node agent runs the command when NVML is not enough, ``gpufair topology parse`` reads a
saved capture, and the tests read every real capture in ``../shared/data/topology/``. Real
outputs vary: tab separated or space aligned, ANSI underline codes around the header, no
``NUMA Affinity`` column (old drivers), ``N/A`` NUMA ids, comma-list CPU affinities, NIC rows,
columns and legends, ``topo -mp`` (PCIe only), hand-edited header whitespace. All of them are
read; NIC rows and columns are ignored. Anything else that does not look like the matrix is
refused with a :class:`TopologyParseError` naming the line. Pure: no file I/O.
"""

from __future__ import annotations

import dataclasses
import re

from gpufair.core import topology

LinkLevel = topology.LinkLevel

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_GPU_NAME = re.compile(r"GPU(\d+)")
_NVLINK = re.compile(r"NV(\d+)")
_CPU_LIST = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")
_NUMA_ID = re.compile(r"\d+")
_NOT_AVAILABLE = "N/A"

_LEVELS: dict[str, LinkLevel] = {
    "X": LinkLevel.SELF,
    "PIX": LinkLevel.PIX,
    "PXB": LinkLevel.PXB,
    "PHB": LinkLevel.PHB,
    "NODE": LinkLevel.NODE,
    "SYS": LinkLevel.SYS,
    "SOC": LinkLevel.SYS,  # drivers before 2017 printed SOC for what is now SYS
}


class _Column:
    """Names of the per-GPU columns after the link cells, as the header spells them."""

    CPU_AFFINITY = ("CPU", "Affinity")
    NUMA_AFFINITY = ("NUMA", "Affinity")
    GPU_NUMA_ID = ("GPU", "NUMA", "ID")
    ALL = (CPU_AFFINITY, NUMA_AFFINITY, GPU_NUMA_ID)


@dataclasses.dataclass(frozen=True)
class TopologyMatrix:
    """The GPU-to-GPU part of one ``nvidia-smi topo -m`` output."""

    gpu_count: int
    levels: tuple[tuple[LinkLevel, ...], ...]
    """``levels[i][j]`` between GPU i and GPU j; ``SELF`` on the diagonal."""
    nvlinks: tuple[tuple[int, ...], ...]
    """Number of bonded NVLinks between GPU i and GPU j (``NV12`` -> 12), 0 otherwise."""
    numa: tuple[int | None, ...]
    """NUMA node of each GPU; ``None`` where the output does not say (no column, ``N/A``)."""
    cpu_affinity: tuple[str | None, ...]
    """CPU list of each GPU as printed (``0-63,128-191``); ``None`` where the output has none."""


class TopologyParseError(ValueError):
    """The text is not a readable ``nvidia-smi topo -m`` matrix."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        """1-based line number of the offending line."""
        self.reason = reason
        """What was wrong, without the line number."""


@dataclasses.dataclass(frozen=True)
class _Header:
    line: int
    devices: tuple[str, ...]
    attributes: tuple[tuple[str, ...], ...]


def parse(text: str) -> TopologyMatrix:
    """Parse the output of ``nvidia-smi topo -m`` (or ``-mp``); see the module docstring."""
    lines = [_ANSI.sub("", line) for line in text.splitlines()]
    header = _parse_header(lines)
    gpu_count = sum(1 for device in header.devices if _GPU_NAME.fullmatch(device))
    if gpu_count > topology.MAX_LINKED_GPUS:
        raise TopologyParseError(
            header.line,
            f"the header names {gpu_count} GPUs; gpufair reads matrices of at most "
            f"{topology.MAX_LINKED_GPUS}",
        )
    others = set(header.devices[gpu_count:])
    levels: list[tuple[LinkLevel, ...]] = []
    nvlinks: list[tuple[int, ...]] = []
    numa: list[int | None] = []
    cpus: list[str | None] = []
    row_lines: list[int] = []
    number = header.line
    ended_at: int | None = None
    for number, line in enumerate(lines[header.line :], start=header.line + 1):
        cells = line.split()
        if ended_at is None:
            if not cells or cells[0].rstrip(":") == "Legend":
                ended_at = number
                continue
            name = cells[0]
            if name in others:
                continue  # a NIC row: not ours to model
            if len(levels) == gpu_count:
                raise TopologyParseError(
                    number,
                    f"unexpected row {name!r} after the GPU rows (the header names "
                    f"{gpu_count} GPUs)",
                )
            expected = f"GPU{len(levels)}"
            if name != expected:
                raise TopologyParseError(
                    number, f"expected the row of {expected}, found {_quote(line)}"
                )
            row = _parse_gpu_row(
                number, cells, header=header, gpu_count=gpu_count, row_index=len(levels)
            )
            levels.append(row[0])
            nvlinks.append(row[1])
            numa.append(row[2])
            cpus.append(row[3])
            row_lines.append(number)
        elif cells and (cells[0] in header.devices):
            raise TopologyParseError(
                number,
                f"row {cells[0]} after the end of the matrix (a blank line or the legend ends it)",
            )
    if len(levels) < gpu_count:
        missing = f"GPU{len(levels)}"
        at = ended_at if ended_at is not None else number
        raise TopologyParseError(at, f"the matrix ends before the row of {missing}")
    _check_symmetric(levels, nvlinks, row_lines)
    return TopologyMatrix(
        gpu_count=gpu_count,
        levels=tuple(levels),
        nvlinks=tuple(nvlinks),
        numa=tuple(numa),
        cpu_affinity=tuple(cpus),
    )


def _other_tool(lines: list[str]) -> TopologyParseError | None:
    """The error for a known capture of another vendor's tool, if ``lines`` is one."""
    for number, line in enumerate(lines, start=1):
        if "ROCm System Management Interface" in line or "rocm-smi" in line.lower():
            return TopologyParseError(
                number,
                "this is AMD `rocm-smi --showtopo` output, not `nvidia-smi topo -m`; "
                "gpufair reads NVIDIA topology only",
            )
    return None


def _parse_header(lines: list[str]) -> _Header:
    for number, line in enumerate(lines, start=1):
        words = line.split()
        if not words:
            continue
        if words[0] != "GPU0":
            other = _other_tool(lines)
            if other is not None:
                raise other
            raise TopologyParseError(
                number,
                f"expected the header row of `nvidia-smi topo -m` (GPU0 GPU1 ...), "
                f"found {_quote(line)}",
            )
        return _header_from_words(number, words)
    raise TopologyParseError(
        max(len(lines), 1), "no `nvidia-smi topo -m` matrix found (empty input)"
    )


def _header_from_words(number: int, words: list[str]) -> _Header:
    devices: list[str] = []
    position = 0
    while position < len(words) and not _attribute_at(words, position):
        devices.append(words[position])
        position += 1
    attributes: list[tuple[str, ...]] = []
    while position < len(words):
        attribute = _attribute_at(words, position)
        if attribute is None:
            raise TopologyParseError(
                number,
                f"unknown header column {words[position]!r} after the device columns",
            )
        attributes.append(attribute)
        position += len(attribute)
    gpus = 0
    for device in devices:
        match = _GPU_NAME.fullmatch(device)
        if match is None:
            break
        if int(match.group(1)) != gpus:
            raise TopologyParseError(number, f"header column {device} where GPU{gpus} belongs")
        gpus += 1
    for device in devices[gpus:]:
        if _GPU_NAME.fullmatch(device):
            raise TopologyParseError(number, f"header column {device} after a non-GPU column")
    if len(set(devices)) != len(devices):
        raise TopologyParseError(number, "the header names a device twice")
    if len(set(attributes)) != len(attributes):
        raise TopologyParseError(number, "the header names an attribute column twice")
    return _Header(line=number, devices=tuple(devices), attributes=tuple(attributes))


def _attribute_at(words: list[str], position: int) -> tuple[str, ...] | None:
    for attribute in _Column.ALL:
        if tuple(words[position : position + len(attribute)]) == attribute:
            return attribute
    return None


def _parse_gpu_row(
    number: int,
    cells: list[str],
    *,
    header: _Header,
    gpu_count: int,
    row_index: int,
) -> tuple[tuple[LinkLevel, ...], tuple[int, ...], int | None, str | None]:
    name = cells[0]
    device_count = len(header.devices)
    links = cells[1 : 1 + device_count]
    if len(links) < device_count:
        raise TopologyParseError(
            number, f"row {name} has {len(links)} link cells, the header names {device_count}"
        )
    levels: list[LinkLevel] = []
    nvlinks: list[int] = []
    for column, cell in enumerate(links[:gpu_count]):
        level, links_count = _parse_level(number, cell, row=name, column=header.devices[column])
        if (column == row_index) != (level == LinkLevel.SELF):
            raise TopologyParseError(
                number,
                f"{name} to {header.devices[column]} is {cell!r}: "
                "X belongs on the diagonal and only there",
            )
        levels.append(level)
        nvlinks.append(links_count)
    for column, cell in enumerate(links[gpu_count:], start=gpu_count):
        _parse_level(number, cell, row=name, column=header.devices[column])
    values = cells[1 + device_count :]
    numa, cpu = _parse_attributes(number, name, values, header.attributes)
    return tuple(levels), tuple(nvlinks), numa, cpu


def _parse_level(number: int, cell: str, *, row: str, column: str) -> tuple[LinkLevel, int]:
    level = _LEVELS.get(cell)
    if level is not None:
        return level, 0
    match = _NVLINK.fullmatch(cell)
    if match is not None and int(match.group(1)) > 0:
        return LinkLevel.NVLINK, int(match.group(1))
    raise TopologyParseError(
        number,
        f"{row} to {column}: unknown link {cell!r} (expected X, NV#, PIX, PXB, PHB, NODE or SYS)",
    )


def _parse_attributes(
    number: int,
    name: str,
    values: list[str],
    attributes: tuple[tuple[str, ...], ...],
) -> tuple[int | None, str | None]:
    if len(values) > len(attributes):
        raise TopologyParseError(
            number,
            f"row {name} has {len(values)} cells after the links, the header names "
            f"{len(attributes)} ({_names(attributes)})",
        )
    # A column can only be missing at the front: the CPU affinity is left empty when the
    # process may not run on the GPU's CPUs (a Slurm cgroup), the other columns always print.
    by_name = dict(zip(attributes[len(attributes) - len(values) :], values, strict=True))
    cpu = by_name.get(_Column.CPU_AFFINITY)
    if cpu == _NOT_AVAILABLE:
        cpu = None
    if cpu is not None and not _CPU_LIST.fullmatch(cpu):
        raise TopologyParseError(number, f"row {name}: CPU affinity {cpu!r} is not a CPU list")
    numa = by_name.get(_Column.NUMA_AFFINITY)
    for attribute in (_Column.NUMA_AFFINITY, _Column.GPU_NUMA_ID):
        value = by_name.get(attribute)
        if value is not None and value != _NOT_AVAILABLE and not _CPU_LIST.fullmatch(value):
            raise TopologyParseError(
                number, f"row {name}: {' '.join(attribute)} {value!r} is not a NUMA id or N/A"
            )
    # A GPU close to several NUMA nodes ("0-1") has no single NUMA node to align with.
    numa_id = int(numa) if numa is not None and _NUMA_ID.fullmatch(numa) else None
    return numa_id, cpu


def _check_symmetric(
    levels: list[tuple[LinkLevel, ...]],
    nvlinks: list[tuple[int, ...]],
    row_lines: list[int],
) -> None:
    for i in range(len(levels)):
        for j in range(i):
            if levels[i][j] != levels[j][i] or nvlinks[i][j] != nvlinks[j][i]:
                raise TopologyParseError(
                    row_lines[i],
                    f"GPU{i} to GPU{j} differs from GPU{j} to GPU{i} "
                    f"(line {row_lines[j]}): the matrix must be symmetric",
                )


def _names(attributes: tuple[tuple[str, ...], ...]) -> str:
    return ", ".join(" ".join(attribute) for attribute in attributes) or "none"


def _quote(line: str, limit: int = 60) -> str:
    text = line.strip()
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")
