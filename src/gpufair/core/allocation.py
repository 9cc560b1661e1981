"""Which devices kubelet should be told to prefer, and whether what it allocated is gpufair's set.

The device plugin API gives ``GetPreferredAllocation`` no pod identity (kubernetes #82606), so
the agent's device-plugin proxy (:mod:`gpufair.agent.deviceplugin`) asks :func:`prefer` for the
answer: the one *unconfirmed* gpufair pod on the node whose chosen set has the requested size
and fits in ``available | must_include`` (and contains every must-include device). Bind never
lets two unconfirmed pods of one size wait on one node (:func:`blocks_bind`), so the answer is
never ambiguous; when it would be, or when no pod fits, the proxy falls back to NVIDIA's own
preference. The PodResources reconciler (:mod:`gpufair.agent.podresources`) asks :func:`check`
whether what kubelet allocated is what bind chose.

A pod whose GPUs several containers request is admitted container by container: kubelet asks
for each container's share separately. Its candidate then carries ``parts`` (:func:`split`):
bind's set cut in the containers' admission order, lowest devices first, and each request is
answered with the pod's first part that still fits, so its containers together get exactly
bind's set. Bind's rule counts such a pod by its parts' sizes (:func:`request_sizes`), so no
part shares its size with another unconfirmed pod on the node.

Device IDs are opaque strings here (NVIDIA's plugin uses GPU UUIDs, or indices with
``DEVICE_ID_STRATEGY=index``); the agent maps them to GPU indices.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Collection, Iterable, Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class Candidate:
    """An unconfirmed gpufair pod bound to this node and the devices bind chose for it."""

    pod: str
    """``namespace/name``, for logs and events."""
    devices: frozenset[str]
    parts: tuple[frozenset[str], ...] = ()
    """The devices of each GPU container in admission order, when several share ``devices``
    (:func:`split`); empty for a pod with one GPU container."""

    def requests(self) -> tuple[frozenset[str], ...]:
        """What kubelet allocates in one request each: the parts, or the whole set."""
        return self.parts or (self.devices,)


class Outcome(enum.StrEnum):
    """Why :func:`prefer` answered as it did (a metric label)."""

    GPUFAIR = "gpufair"
    NO_CANDIDATE = "no-candidate"
    AMBIGUOUS = "ambiguous"


@dataclasses.dataclass(frozen=True, slots=True)
class Preference:
    """gpufair's answer for one container request; ``devices`` is empty unless ``GPUFAIR``."""

    outcome: Outcome
    devices: tuple[str, ...] = ()
    pod: str | None = None


def fits(
    devices: frozenset[str], *, available: Collection[str], must_include: Collection[str], size: int
) -> bool:
    """Whether kubelet can allocate exactly ``devices`` for this request."""
    if len(devices) != size:
        return False
    if not devices.issuperset(must_include):
        return False
    allowed = set(available) | set(must_include)
    return devices.issubset(allowed)


def split(devices: Iterable[str], sizes: Sequence[int]) -> tuple[frozenset[str], ...]:
    """Bind's set cut into the containers' shares, in admission order, lowest devices first.

    Raises ``ValueError`` when the sizes do not add up to the set (the pod is no candidate).
    """
    ordered = sorted(devices)
    if any(size <= 0 for size in sizes) or sum(sizes) != len(ordered):
        raise ValueError(f"container shares {list(sizes)} do not add up to {len(ordered)} GPUs")
    parts = []
    start = 0
    for size in sizes:
        parts.append(frozenset(ordered[start : start + size]))
        start += size
    return tuple(parts)


def prefer(
    candidates: Iterable[Candidate],
    *,
    available: Collection[str],
    must_include: Collection[str],
    size: int,
) -> Preference:
    """gpufair's preferred devices for one container request (see the module docstring)."""
    matching: list[tuple[Candidate, frozenset[str]]] = []
    for candidate in candidates:
        part = next(
            (
                devices
                for devices in candidate.requests()
                if fits(devices, available=available, must_include=must_include, size=size)
            ),
            None,
        )
        if part is not None:
            matching.append((candidate, part))
    if not matching:
        return Preference(Outcome.NO_CANDIDATE)
    if len({part for _, part in matching}) > 1:
        return Preference(Outcome.AMBIGUOUS)
    chosen, part = matching[0]
    return Preference(Outcome.GPUFAIR, devices=tuple(sorted(part)), pod=chosen.pod)


def request_sizes(size: int, shares: Sequence[int] = ()) -> frozenset[int]:
    """The sizes kubelet will ask the proxy for: one request per GPU container, so the shares
    of a pod whose GPUs several containers request, else the pod's size."""
    return frozenset(shares) if len(shares) > 1 else frozenset({size})


def blocks_bind(*, unconfirmed_sizes: Iterable[int], size: int, shares: Sequence[int] = ()) -> bool:
    """Whether a node already has an unconfirmed gpufair pod that kubelet will ask for a size
    this pod's containers will ask for too (:func:`request_sizes` on both sides).

    Bind refuses such a node for now (filter says why): the second pod would make the proxy's
    answer ambiguous. The node is free for it again once kubelet allocated the first and the
    agent confirmed it.
    """
    return not request_sizes(size, shares).isdisjoint(unconfirmed_sizes)


class Verdict(enum.StrEnum):
    """What the PodResources reconciler found for one pod."""

    CONFIRMED = "confirmed"
    MISMATCH = "mismatch"
    UNRECORDED = "unrecorded"
    """kubelet gave the pod GPUs but bind recorded none (a pod gpufair did not place)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Check:
    verdict: Verdict
    chosen: frozenset[int] | None
    allocated: frozenset[int]

    @property
    def unexpected(self) -> frozenset[int]:
        """Allocated GPUs that bind did not choose."""
        return self.allocated - (self.chosen or frozenset())

    @property
    def missing(self) -> frozenset[int]:
        """Chosen GPUs that kubelet did not allocate."""
        return (self.chosen or frozenset()) - self.allocated


def check(*, chosen: frozenset[int] | None, allocated: frozenset[int]) -> Check:
    """Compare bind's choice with kubelet's allocation (both as GPU indices)."""
    if chosen is None:
        return Check(Verdict.UNRECORDED, chosen, allocated)
    verdict = Verdict.CONFIRMED if chosen == allocated else Verdict.MISMATCH
    return Check(verdict, chosen, allocated)
