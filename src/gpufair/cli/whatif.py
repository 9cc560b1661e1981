"""``gpufair whatif``: what would each tenant's fair share be, given these pools and quotas?

Reads GPUPool and TenantQuota objects from the same files ``kubectl apply -f`` takes
(multi-document YAML or JSON, ``kind: List``, directories, ``-`` for standard input), takes pool
capacities and tenant demands from the command line, and prints each tenant's fair share per
pool, computed by :func:`gpufair.core.fairshare.compute` (the operator's own rule).

Where the command line says nothing, the objects' status is used (a dump of ``kubectl get
gpool,tq -o yaml`` answers "what now?"): a pool's ``status.capacity``, a tenant's
``status.pools[].demand``. A tenant with no demand from either is assumed to want as much as it
may take (its limit, or the whole pool): the answer is then what it gets when everybody is busy.

Invalid input is reported as ``gpufair: FILE: TenantQuota team-a: spec.pools[0].guaranteed: must
be <= limit (32)`` with exit code 2, every problem on that one line separated by ``; ``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpufair.api import manifests, quota

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


class InputError(Exception):
    """Input the command cannot use; the message says which and why (exit code 2)."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "whatif",
        help="print each tenant's fair share per pool for given capacities and demands",
        description=(
            "Load GPUPool and TenantQuota objects as `kubectl apply -f` does and print each"
            " tenant's fair share per pool. Capacity and demand not given on the command line"
            " come from the objects' status; a tenant with no demand at all is assumed to want"
            " as much as it may take (its limit, or the whole pool)."
        ),
    )
    parser.add_argument(
        "-f",
        "--filename",
        dest="files",
        action="append",
        required=True,
        metavar="FILE",
        help="YAML or JSON file, directory of them, or - for standard input (repeatable)",
    )
    parser.add_argument(
        "--capacity",
        action="append",
        default=[],
        type=_capacity,
        metavar="POOL=GPUS",
        help="GPUs in a pool (repeatable)",
    )
    parser.add_argument(
        "--demand",
        action="append",
        default=[],
        type=_demand,
        metavar="TENANT/POOL=GPUS",
        help="GPUs a tenant's pods want in a pool: running, admitted and waiting (repeatable)",
    )
    parser.add_argument(
        "-o", "--output", choices=("table", "json"), default="table", help="output format"
    )
    parser.set_defaults(handler=run)


@dataclasses.dataclass(frozen=True)
class TenantShare:
    """One tenant's claim on one pool and the fair share it gets."""

    tenant: str
    weight: float
    guaranteed: int
    limit: int | None
    lendable: int
    demand: int
    demand_assumed: bool
    """No demand was given or recorded: the tenant was taken to want its limit (or the pool)."""
    fair_share: float


@dataclasses.dataclass(frozen=True)
class PoolShares:
    """The outcome for one pool."""

    pool: str
    capacity: int
    guaranteed_total: int
    overcommitted: bool
    tenants: tuple[TenantShare, ...]


def run(args: argparse.Namespace) -> int:
    from gpufair.api import manifests

    try:
        loaded = manifests.load(read_documents(args.files))
        results = fair_shares(loaded, capacities=dict(args.capacity), demands=dict(args.demand))
        skipped = [name for name in loaded.pools if name not in {r.pool for r in results}]
    except manifests.InvalidManifestsError as invalid:  # every problem, on one line
        print("gpufair: " + "; ".join(map(str, invalid.problems)), file=sys.stderr)
        return 2
    except InputError as error:
        print(f"gpufair: {error}", file=sys.stderr)
        return 2
    for note in loaded.notes:
        print(f"gpufair: note: {note}", file=sys.stderr)
    for name in skipped:
        print(
            f"gpufair: note: pool {name} skipped: no --capacity {name}=GPUS and no status.capacity",
            file=sys.stderr,
        )
    if args.output == "json":
        print(json.dumps(to_json(results), indent=2))
    else:
        sys.stdout.write(to_table(results))
    return 0


def read_documents(paths: Sequence[str]) -> list[manifests.Document]:
    """Every YAML document of ``paths`` (files, directories, ``-``), in command-line order."""
    import yaml

    from gpufair.api import manifests

    documents: list[manifests.Document] = []
    for origin, text in _read_texts(paths):
        try:
            bodies = list(yaml.safe_load_all(text))
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark is not None else ""
            problem = getattr(error, "problem", None) or str(error)
            raise InputError(f"{origin}: {where}invalid YAML: {problem}") from None
        documents += [manifests.Document(origin, i, body) for i, body in enumerate(bodies, 1)]
    return documents


def fair_shares(
    loaded: manifests.Manifests,
    *,
    capacities: Mapping[str, int],
    demands: Mapping[tuple[str, str], int],
) -> list[PoolShares]:
    """The fair shares of every pool with a known capacity; pools without one are left out.

    Pure. Raises :class:`InputError` for a capacity or demand that names no pool, tenant or
    quota entry, and when no pool has a capacity at all.
    """
    from gpufair.core import fairshare
    from gpufair.state import rules

    _check_names(loaded, capacities=capacities, demands=demands)
    results: list[PoolShares] = []
    for name, gpu_pool in loaded.pools.items():
        capacity = capacities.get(name)
        if capacity is None and gpu_pool.status is not None:
            capacity = gpu_pool.status.capacity
        if capacity is None:
            continue
        tenants = []
        for tenant_name, tenant in loaded.quotas.items():
            entry = tenant.spec.pool(name)
            if entry is None:
                continue
            demand = demands.get((tenant_name, name))
            if demand is None:
                demand = _recorded_demand(tenant, name)
            assumed = demand is None
            if demand is None:
                demand = capacity if entry.limit is None else entry.limit
            tenants.append(
                TenantShare(
                    tenant=tenant_name,
                    weight=tenant.spec.weight,
                    guaranteed=entry.guaranteed,
                    limit=entry.limit,
                    lendable=entry.effective_lendable,
                    demand=demand,
                    demand_assumed=assumed,
                    fair_share=0.0,
                )
            )
        shares = fairshare.compute(
            capacity,
            [
                rules.tenant_claim(
                    tenant=t.tenant,
                    weight=t.weight,
                    guaranteed=t.guaranteed,
                    limit=t.limit,
                    lendable=t.lendable,
                    held=t.demand,
                    waiting=0,
                )
                for t in tenants
            ],
        )
        results.append(
            PoolShares(
                pool=name,
                capacity=capacity,
                guaranteed_total=shares.guaranteed_total,
                overcommitted=shares.overcommitted,
                tenants=tuple(
                    dataclasses.replace(t, fair_share=shares.share(t.tenant)) for t in tenants
                ),
            )
        )
    if not results:
        raise InputError("no pool has a capacity: pass --capacity POOL=GPUS")
    return results


def to_json(results: Sequence[PoolShares]) -> dict[str, Any]:
    """The machine-readable answer: ``{"pools": {pool: {"capacity", "overcommitted",
    "tenants": {tenant: {"weight", "guaranteed", "limit", "demand", "fair_share"}}}}}``."""
    return {
        "pools": {
            result.pool: {
                "capacity": result.capacity,
                "overcommitted": result.overcommitted,
                "tenants": {
                    t.tenant: {
                        "weight": _number(t.weight),
                        "guaranteed": t.guaranteed,
                        "limit": t.limit,
                        "demand": t.demand,
                        "fair_share": t.fair_share,
                    }
                    for t in result.tenants
                },
            }
            for result in results
        }
    }


def to_table(results: Sequence[PoolShares]) -> str:
    """The human-readable answer: one aligned table per pool."""
    blocks = []
    assumed = False
    for result in results:
        overcommitted = ", OVERCOMMITTED" if result.overcommitted else ""
        header = (
            f"pool {result.pool}: {result.capacity} GPUs,"
            f" {result.guaranteed_total} guaranteed{overcommitted}"
        )
        rows = [["TENANT", "WEIGHT", "GUARANTEED", "LENDABLE", "LIMIT", "DEMAND", "FAIR SHARE"]]
        for t in result.tenants:
            assumed = assumed or t.demand_assumed
            rows.append(
                [
                    t.tenant,
                    str(_number(t.weight)),
                    str(t.guaranteed),
                    str(t.lendable),
                    "-" if t.limit is None else str(t.limit),
                    f"{t.demand}*" if t.demand_assumed else str(t.demand),
                    f"{t.fair_share:.2f}",
                ]
            )
        if len(rows) == 1:
            rows.append(["(no tenant uses this pool)"])
        blocks.append(header + "\n" + _align(rows))
    footnote = "\n* no demand given: the most the tenant may take\n" if assumed else ""
    return "\n\n".join(blocks) + "\n" + footnote


def _align(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def _number(value: float) -> float | int:
    """A weight as the user wrote it: ``2`` rather than ``2.0``."""
    return int(value) if float(value).is_integer() else value


def _recorded_demand(tenant: quota.TenantQuota, pool: str) -> int | None:
    status = tenant.status
    if status is None:
        return None
    recorded = next((entry for entry in status.pools if entry.name == pool), None)
    return None if recorded is None else recorded.demand


def _check_names(
    loaded: manifests.Manifests,
    *,
    capacities: Mapping[str, int],
    demands: Mapping[tuple[str, str], int],
) -> None:
    known_pools = ", ".join(loaded.pools) or "none"
    for pool in capacities:
        if pool not in loaded.pools:
            raise InputError(f"--capacity {pool}: no GPUPool {pool} in the input ({known_pools})")
    for tenant, pool in demands:
        flag = f"--demand {tenant}/{pool}"
        if tenant not in loaded.quotas:
            known = ", ".join(loaded.quotas) or "none"
            raise InputError(f"{flag}: no TenantQuota {tenant} in the input ({known})")
        if pool not in loaded.pools:
            raise InputError(f"{flag}: no GPUPool {pool} in the input ({known_pools})")
        if loaded.quotas[tenant].spec.pool(pool) is None:
            raise InputError(f"{flag}: TenantQuota {tenant} has no entry for pool {pool}")


def _read_texts(paths: Sequence[str]) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for name in paths:
        if name == "-":
            texts.append(("<stdin>", sys.stdin.read()))
            continue
        path = pathlib.Path(name)
        files = (
            sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file())
            if path.is_dir()
            else [path]
        )
        for file in files:
            try:
                texts.append((str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as error:
                reason = getattr(error, "strerror", None) or str(error)
                raise InputError(f"{file}: cannot read: {reason}") from None
    return texts


def _capacity(text: str) -> tuple[str, int]:
    pool, _, gpus = text.partition("=")
    return pool, _gpus(text, pool, gpus, form="POOL=GPUS")


def _demand(text: str) -> tuple[tuple[str, str], int]:
    key, _, gpus = text.partition("=")
    tenant, _, pool = key.partition("/")
    if not tenant or not pool:
        raise argparse.ArgumentTypeError(f"{text!r} is not TENANT/POOL=GPUS")
    return (tenant, pool), _gpus(text, key, gpus, form="TENANT/POOL=GPUS")


def _gpus(text: str, key: str, gpus: str, *, form: str) -> int:
    if not key or not (gpus.isascii() and gpus.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not {form} with GPUS a whole number >= 0")
    return int(gpus)
