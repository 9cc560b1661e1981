"""At startup no gated pod is released before the store holds the initial listings.

The reconciler releases gated pods of namespaces that belong to no tenant. If the pod listing
arrived before the TenantQuota listing, pods of real tenants would look ownerless and bypass
fair-share admission. The index handlers fill the store during the initial listings, kopf starts
the reconcile loop only once all are indexed, and the loop marks the store synced; a pass on a
store that is not synced releases nothing.
"""

from __future__ import annotations

from typing import Any

import kopf
from tests.builders import operator as b
from tests.operator.test_reconciler import FakeWriter, make

from gpufair.api import names
from gpufair.operator import handlers, store


def gated_pod(namespace: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{namespace}-{name}",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "schedulingGates": [{"name": names.ADMISSION_GATE}],
            "containers": [{"name": "c", "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": {"phase": "Pending"},
    }


def namespace(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


QUOTA_BY_SELECTOR = {
    "metadata": {"name": "a", "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z"},
    "spec": {"namespaceSelector": {"matchLabels": {"team": "a"}}, "pools": [{"name": b.POOL}]},
}


def memo_with_view() -> kopf.Memo:
    memo = kopf.Memo()
    memo.store = store.ClusterStore()
    memo.store.nodes = {"n1": b.node("n1")}
    memo.store.pools = {b.POOL: b.gpu_pool()}
    return memo


async def test_pods_listed_before_the_quotas_stay_gated_until_the_view_has_synced() -> None:
    memo = memo_with_view()
    cluster: store.ClusterStore = memo.store
    for body in (namespace("team-a", team="a"), namespace("nobody")):
        handlers.listed_namespace(body=kopf.Body(body), memo=memo)
    for body in (gated_pod("team-a", "own"), gated_pod("nobody", "stray")):
        handlers.listed_pod(body=kopf.Body(body), memo=memo)
    writer = FakeWriter()
    driver, events = make(cluster, writer)

    early = await driver.run_once(now=10.0)

    assert early.releases == (), "pods of team-a would bypass admission: its quota is not in"
    assert writer.admitted == []
    assert not [e for e in events if e.reason == "Released"]

    handlers.listed_tenant(body=kopf.Body(QUOTA_BY_SELECTOR), memo=memo)
    cluster.mark_synced()  # what the reconcile loop does when kopf starts it
    synced = await driver.run_once(now=20.0)

    assert [r.pod.key for r in synced.releases] == ["nobody/stray"]
    assert [a.pod.key for a in synced.admissions] == ["team-a/own"]
    assert sorted(writer.admitted) == ["nobody/stray", "team-a/own"]


def test_once_synced_the_index_handlers_leave_the_view_to_the_event_handlers() -> None:
    memo = memo_with_view()
    memo.store.mark_synced()
    handlers.listed_pod(body=kopf.Body(gated_pod("nobody", "late")), memo=memo)
    handlers.listed_tenant(body=kopf.Body(QUOTA_BY_SELECTOR), memo=memo)
    assert memo.store.pods == {}
    assert memo.store.tenants == {}


def test_every_kind_the_view_watches_has_an_index_handler() -> None:
    # kopf holds back every other handler (the reconcile loop included) until the kinds with an
    # index handler are listed and indexed; a kind without one would not be waited for.
    registry = kopf.get_default_registry()

    def selectors(handlers_: Any) -> set[tuple[str | None, str | None, str | None]]:
        return {
            (h.selector.group, h.selector.version, h.selector.any_name)
            for h in handlers_
            if h.fn.__module__ == handlers.__name__ and h.selector is not None
        }

    watched = selectors(registry._watching.get_all_handlers())
    assert ("", "v1", "pods") in watched
    assert (names.GROUP, names.VERSION, names.TENANT_QUOTA_PLURAL) in watched
    assert selectors(registry._indexing.get_all_handlers()) == watched
