"""Whether a pod group fits a pool all at once, and where: the all-or-nothing placement plan.

A group (``gpufair.state.groups``) is admitted only when every member can run at the same time,
each on its own free GPUs. :func:`fit` answers that for one pool's free GPUs: a plan that gives
every member a set of free GPUs (chosen by :func:`gpufair.core.placement.choose`, so the pool's
Pack/Spread mode and Required topology rule hold for each member), on the fewest machines, or a
readable reason why there is none. Never a partial plan: either every member is placed or none.

Fewest machines is bin packing; groups are small (a few to a few dozen members), so the search
is exact within a step budget: first-fit decreasing gives an upper bound, then a depth-first
search over machine *classes* (nodes with the same topology, free GPUs and domain are
interchangeable) tries every smaller count. When the budget runs out the best plan found so far
stands (still a whole plan, perhaps on one machine more than needed).

With ``one_domain`` the whole group must sit in one multi-node NVLink domain (nodes labelled
with the same ``nvidia.com/gpu.clique``); a node without a domain is a domain of its own, so such
a group then needs one machine.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from gpufair.core import placement, policy
from gpufair.core import topology as topo

DEFAULT_BUDGET = 20_000
"""Placement attempts the exact search may make per domain before keeping the best plan found."""


@dataclasses.dataclass(frozen=True, slots=True)
class NodeRoom:
    """A node of the pool as the fit check sees it."""

    name: str
    topology: topo.NodeTopology
    free: frozenset[int]
    """GPU indices free for the group (usable: already without hidden ones)."""
    domain: str | None = None
    """Multi-node NVLink domain (``nvidia.com/gpu.clique``), ``None`` when the node has none."""


@dataclasses.dataclass(frozen=True, slots=True)
class MemberPlacement:
    """One member's GPUs: ``member`` is its position in the request list."""

    member: int
    node: str
    gpus: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class GangPlan:
    """Where every member runs, in request order."""

    placements: tuple[MemberPlacement, ...]
    machines: int
    domain: str | None = None
    """The NVLink domain the plan keeps to (``one_domain``), else ``None``."""


@dataclasses.dataclass(frozen=True, slots=True)
class GangNoFit:
    """The group cannot run whole now; ``reason`` says why, for people."""

    reason: str


def fit(
    requests: Sequence[int],
    nodes: Sequence[NodeRoom],
    *,
    mode: policy.PlacementMode = policy.PlacementMode.PACK,
    rule: policy.TopologyRule = policy.TopologyRule.PREFERRED,
    one_domain: bool = False,
    budget: int = DEFAULT_BUDGET,
) -> GangPlan | GangNoFit:
    """All members of a group (``requests``: GPUs per member) placed at once, or why not.

    ``ValueError`` for an empty group, a member asking for fewer than one GPU, or two nodes of
    the same name.
    """
    if not requests:
        raise ValueError("a group has at least one member")
    if any(count < 1 for count in requests):
        raise ValueError(f"every member requests at least one GPU, not {list(requests)}")
    if len({node.name for node in nodes}) != len(nodes):
        raise ValueError("node names must be distinct")
    best: GangPlan | None = None
    for domain, members in _partitions(nodes, one_domain=one_domain):
        found = _Search(requests, members, mode=mode, rule=rule, budget=budget).run()
        if found is not None and (best is None or len(found) < best.machines):
            best = _plan(found, domain=domain)
    if best is not None:
        return best
    return GangNoFit(reason=_reason(requests, nodes, mode=mode, rule=rule, one_domain=one_domain))


_Assignment = dict[int, tuple[str, tuple[int, ...]]]
"""member -> (node, GPUs)."""


def _partitions(
    nodes: Sequence[NodeRoom], *, one_domain: bool
) -> list[tuple[str | None, list[NodeRoom]]]:
    if not one_domain:
        return [(None, list(nodes))]
    by_domain: dict[str, list[NodeRoom]] = {}
    alone: list[tuple[str | None, list[NodeRoom]]] = []
    for node in nodes:
        if node.domain is None:
            alone.append((None, [node]))
        else:
            by_domain.setdefault(node.domain, []).append(node)
    return [*sorted(by_domain.items()), *alone]


def _plan(found: _Assignment, *, domain: str | None) -> GangPlan:
    placements = tuple(
        MemberPlacement(member=member, node=node, gpus=gpus)
        for member, (node, gpus) in sorted(found.items())
    )
    return GangPlan(
        placements=placements,
        machines=len({p.node for p in placements}),
        domain=domain,
    )


class _Search:
    """Fewest machines for the members on ``nodes``: greedy bound, then exact within budget."""

    def __init__(
        self,
        requests: Sequence[int],
        nodes: Sequence[NodeRoom],
        *,
        mode: policy.PlacementMode,
        rule: policy.TopologyRule,
        budget: int,
    ) -> None:
        self.requests = list(requests)
        self.order = sorted(range(len(requests)), key=lambda m: (-requests[m], m))
        # Open the roomiest nodes first (fewest machines), then by name for determinism.
        self.nodes = sorted(nodes, key=lambda n: (-len(n.free), n.name))
        self.by_name = {node.name: node for node in self.nodes}
        self.mode, self.rule = mode, rule
        self.budget = budget
        self.best: _Assignment | None = None
        self.best_machines = len(requests) + 1

    def run(self) -> _Assignment | None:
        if sum(self.requests) > sum(len(node.free) for node in self.nodes):
            return None
        self._search(0, {}, {}, greedy=True)
        room = max((len(node.free) for node in self.nodes), default=0)
        lower = -(-sum(self.requests) // room) if room else len(self.requests)
        limit = self.best_machines - 1
        while self.budget > 0 and limit >= lower:
            if not self._search(0, {}, {}, greedy=False, limit=limit):
                break
            limit = self.best_machines - 1
        return self.best

    def _place(self, node: NodeRoom, free: frozenset[int], count: int) -> tuple[int, ...] | None:
        self.budget -= 1
        answer = placement.choose(
            node.topology, free=free, count=count, mode=self.mode, rule=self.rule
        )
        return None if isinstance(answer, placement.NoFit) else answer.gpus

    def _search(
        self,
        position: int,
        opened: dict[str, frozenset[int]],
        chosen: _Assignment,
        *,
        greedy: bool,
        limit: int | None = None,
    ) -> bool:
        """Place members from ``position`` on; True when a plan within ``limit`` was recorded."""
        if position == len(self.order):
            if len(opened) < self.best_machines:
                self.best, self.best_machines = dict(chosen), len(opened)
            return True
        if not greedy and self.budget <= 0:
            return False
        member = self.order[position]
        count = self.requests[member]
        candidates: list[tuple[NodeRoom, frozenset[int]]] = [
            (self.by_name[name], free) for name, free in opened.items()
        ]
        if limit is None or len(opened) < limit:
            seen: set[tuple[topo.NodeTopology, frozenset[int], str | None]] = set()
            for node in self.nodes:
                key = (node.topology, node.free, node.domain)
                if node.name in opened or key in seen:
                    continue
                seen.add(key)
                candidates.append((node, node.free))
        for node, free in candidates:
            gpus = self._place(node, free, count)
            if gpus is None:
                continue
            before = opened.get(node.name)
            opened[node.name] = free - frozenset(gpus)
            chosen[member] = (node.name, gpus)
            done = self._search(position + 1, opened, chosen, greedy=greedy, limit=limit)
            del chosen[member]
            if before is None:
                del opened[node.name]
            else:
                opened[node.name] = before
            if done or greedy:
                return done
        return False


def _reason(
    requests: Sequence[int],
    nodes: Sequence[NodeRoom],
    *,
    mode: policy.PlacementMode,
    rule: policy.TopologyRule,
    one_domain: bool,
) -> str:
    members = len(requests)
    wanted = sum(requests)
    free = sum(len(node.free) for node in nodes)
    sizes = "+".join(str(count) for count in sorted(requests, reverse=True))
    head = f"group of {members} pods ({sizes} GPUs)"
    if wanted > free:
        return f"{head} needs {wanted} GPUs at once; the pool has {free} free"
    widest = max(requests)
    if not any(_fits_alone(node, widest, mode, rule) for node in nodes):
        most = max((len(node.free) for node in nodes), default=0)
        if rule is policy.TopologyRule.REQUIRED and most >= widest:
            island = max(
                (placement.largest_free_island(node.topology, node.free) for node in nodes),
                default=0,
            )
            return (
                f"{head}: no node has a free NVLink island for a {widest}-GPU pod "
                f"(largest free island: {island}; the pool requires one)"
            )
        return f"{head}: no node has {widest} free GPUs for its widest pod (most free: {most})"
    rooms = sorted((len(node.free) for node in nodes if node.free), reverse=True)
    shown = ", ".join(str(room) for room in rooms[:8]) + (", ..." if len(rooms) > 8 else "")
    if one_domain:
        domain_free = max(
            (sum(len(n.free) for n in part) for _, part in _partitions(nodes, one_domain=True)),
            default=0,
        )
        return (
            f"{head}: no NVLink domain can hold every pod at once "
            f"(most free GPUs in one domain: {domain_free})"
        )
    return f"{head}: the free GPUs cannot hold every pod at once (free per node: {shown})"


def _fits_alone(
    node: NodeRoom, count: int, mode: policy.PlacementMode, rule: policy.TopologyRule
) -> bool:
    if len(node.free) < count:
        return False
    answer = placement.choose(node.topology, free=node.free, count=count, mode=mode, rule=rule)
    return not isinstance(answer, placement.NoFit)
