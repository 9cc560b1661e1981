"""The node-label patch the agent sends: set its own keys, delete its stale ones, nothing else.

Pure, called by :mod:`gpufair.agent.publisher`. Ownership is :func:`gpufair.core.labels.
is_owned_key`, the same rule the extender's label reader uses, so the agent never writes or
removes a label it does not own (NVIDIA GPU Feature Discovery's, the cloud provider's, an
admin's), and a key it published for a GPU that no longer exists is removed.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpufair.core import labels

STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
"""Content type of the patch. The kubernetes client would otherwise pick the first JSON type it
knows for ``patch_node``, ``application/json-patch+json``, which a label map is not."""


def compute(
    *,
    current: Mapping[str, str],
    desired: Mapping[str, str],
) -> dict[str, str | None]:
    """The label changes that turn ``current`` into ``desired`` for the agent's own keys.

    A key maps to its new value, or to ``None`` to delete it (strategic-merge and JSON-merge
    patches both read ``null`` as "remove"). Keys the agent does not own are never in the
    result; an empty result means the node is already right.
    """
    foreign = sorted(key for key in desired if not labels.is_owned_key(key))
    if foreign:
        raise ValueError(f"the agent may only set its own labels, not {', '.join(foreign)}")
    patch: dict[str, str | None] = {
        key: value for key, value in sorted(desired.items()) if current.get(key) != value
    }
    patch.update(
        (key, None) for key in sorted(current) if labels.is_owned_key(key) and key not in desired
    )
    return patch


def body(patch: Mapping[str, str | None]) -> dict[str, object]:
    """The strategic-merge patch document for ``patch`` (a Node's ``metadata.labels``)."""
    return {"metadata": {"labels": dict(patch)}}
