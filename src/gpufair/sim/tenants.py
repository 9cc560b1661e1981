"""Tenant weights, guarantees and limits for a replay.

By default they come from the Philly virtual-cluster sizes of the Helios artifact
(``philly_vc_nodes_heliosartifact.csv``: ``vc,node num``): a VC of ``n`` machines weighs ``n``
and is guaranteed its proportional part of the *simulated* cluster,
``floor(n * 8 * capacity / nominal)`` GPUs, where ``nominal`` is the VCs' total (2,816 GPUs).
Tenants of the trace that the file does not name get weight 1 and no guarantee.

``--weights FILE`` replaces that with a CSV of ``tenant,weight[,guaranteed[,limit]]``
(guaranteed and limit in GPUs of the simulated cluster, empty = default); a file in the
Helios ``vc,node num`` format is scaled as above.
"""

from __future__ import annotations

import csv
import math
import pathlib
from collections.abc import Sequence

from gpufair.sim import engine

HELIOS_COLUMNS = ("vc", "node num")
WEIGHT_COLUMNS = ("tenant", "weight")
GPUS_PER_VC_NODE = 8


class TenantFileError(ValueError):
    """A weights file that cannot be used; the message names the file, line and field."""


def load(path: pathlib.Path, *, capacity: int, tenants: Sequence[str]) -> list[engine.TenantSpec]:
    """Read a weights file in either format; see the module docstring."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = tuple(name.strip() for name in reader.fieldnames or ())
            records = [
                (line, {k.strip(): (v or "").strip() for k, v in row.items() if k})
                for line, row in enumerate(reader, start=2)
                if any((v or "").strip() for v in row.values())
            ]
    except OSError as error:
        raise TenantFileError(f"{path}: cannot open: {error.strerror}") from error
    if all(column in columns for column in HELIOS_COLUMNS):
        nodes = {
            row["vc"]: _number(row["node num"], where=f"{path}:{line}: node num")
            for line, row in records
        }
        return from_vc_nodes(nodes, capacity=capacity, tenants=tenants)
    if not all(column in columns for column in WEIGHT_COLUMNS):
        raise TenantFileError(
            f"{path}: expected columns tenant,weight[,guaranteed[,limit]] or 'vc,node num',"
            f" got {','.join(columns)}"
        )
    specs = []
    for line, row in records:
        where = f"{path}:{line}"
        weight = _number(row["weight"], where=f"{where}: weight")
        if weight <= 0:
            raise TenantFileError(f"{where}: weight: must be > 0 (got {weight:g})")
        guaranteed = _gpus(row.get("guaranteed", ""), where=f"{where}: guaranteed") or 0
        limit = _gpus(row.get("limit", ""), where=f"{where}: limit")
        if limit is not None and limit < guaranteed:
            raise TenantFileError(f"{where}: limit {limit} is below guaranteed {guaranteed}")
        specs.append(
            engine.TenantSpec(name=row["tenant"], weight=weight, guaranteed=guaranteed, limit=limit)
        )
    return specs


def from_vc_nodes(
    nodes: dict[str, float], *, capacity: int, tenants: Sequence[str]
) -> list[engine.TenantSpec]:
    """Weights = VC machines; guarantees = the VC's proportional part of ``capacity``."""
    nominal = sum(nodes.values()) * GPUS_PER_VC_NODE
    specs = [
        engine.TenantSpec(
            name=name,
            weight=count,
            guaranteed=math.floor(count * GPUS_PER_VC_NODE * capacity / nominal),
        )
        for name, count in sorted(nodes.items())
        if count > 0
    ]
    known = {spec.name for spec in specs}
    specs += [engine.TenantSpec(name=name) for name in tenants if name not in known]
    return specs


def _number(text: str, *, where: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise TenantFileError(f"{where}: not a number: {text!r}") from error
    if not math.isfinite(value) or value < 0:
        raise TenantFileError(f"{where}: must be a non-negative number (got {text!r})")
    return value


def _gpus(text: str, *, where: str) -> int | None:
    if not text:
        return None
    value = _number(text, where=where)
    if value != int(value):
        raise TenantFileError(f"{where}: must be a whole number of GPUs (got {text!r})")
    return int(value)
