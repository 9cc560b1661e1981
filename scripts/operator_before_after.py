"""Issue 16 before/after comparison of the operator pass (docs/operator.md), for any tree:

    PYTHONPATH=<before-tree>/src .venv/bin/python scripts/operator_before_after.py before
    .venv/bin/python scripts/operator_before_after.py after
    ... after unwritten   # the quotas as if no status had ever been written (the old scenario)

5,000 nodes, 1,000 tenants, 2,000 waiting pods: plan passes with 20 pod and 4 node watch
events and 1 s between them (the tree's PlanCache kept when it has one), wall-clock and CPU
p50; then TenantQuota change -> status patch through the tree's Reconciler with a fake writer.
"""

import asyncio, dataclasses, json, random, statistics, sys, time, logging
from gpufair import captures
from gpufair.api import names
from gpufair.bench import operator as b
from gpufair.operator import plan, reconciler, settings, store
try:
    from gpufair.operator import heap
except ImportError:
    heap = None
nodes, tenants, waiting, passes = 5000, 1000, 2000, 5
shapes = list(captures.load_dir(captures.default_dir()).values())
snap = b.build_snapshot(nodes=nodes, waiting=waiting, tenants=tenants, shapes=shapes, seed=1)
kw = {"cache": plan.PlanCache()} if hasattr(plan, "PlanCache") else {}
collector = heap.Heap() if heap else None
first = plan.plan(snap, half_life=b.HALF_LIFE, **kw)
if "unwritten" not in sys.argv[2:]:
    # The warm-up pass's statuses written, as the reconciler's first pass does: the store then
    # shows each quota with the usage and conditions it wrote (ClusterStore.record_tenant).
    snap = dataclasses.replace(snap, tenants={
        n: dataclasses.replace(t, usage={**t.usage, **{p.pool: p.usage for p in first.tenants[n].pools}},
                               conditions=first.tenants[n].conditions)
        for n, t in snap.tenants.items()})
    plan.plan(snap, half_life=b.HALF_LIFE, **kw)
if collector: collector.after_pass()
rng = random.Random(1)
def events(snap, now):
    pods = list(snap.pods)
    for i in rng.sample(range(len(pods)), 20): pods[i] = dataclasses.replace(pods[i])
    ns = dict(snap.nodes)
    for n in rng.sample(sorted(ns), 4): ns[n] = dataclasses.replace(ns[n])
    return dataclasses.replace(snap, now=now, pods=tuple(pods), nodes=ns)
times = []; cpu = []
for i in range(passes):
    snap = events(snap, b.NOW + i + 1)
    t = time.perf_counter(); c0 = time.process_time(); p = plan.plan(snap, half_life=b.HALF_LIFE, **kw); times.append(time.perf_counter() - t); cpu.append(time.process_time() - c0)
    if collector: collector.after_pass()
class W:
    def __init__(self): self.patched = {}
    async def patch_status(self, *, plural, name, status): self.patched[(plural, name)] = (time.perf_counter(), status)
    async def admit(self, **_): return True
    async def evict(self, **_): return None
    async def label_namespace(self, **_): return None
    async def nudge(self, **_): return None
async def quota():
    cl = store.ClusterStore()
    cl.nodes.update(snap.nodes); cl.pods.update({p.uid: p for p in snap.pods}); cl.tenants.update(snap.tenants)
    cl.pools.update(snap.pools); cl.namespaces.update(snap.namespaces); cl.mark_synced()
    w = W(); d = reconciler.Reconciler(cluster=cl, writer=w, events=lambda e: None, config=settings.OperatorSettings(half_life_seconds=b.HALF_LIFE))
    await d.run_once(now=snap.now); await d.run_once(now=snap.now + 1)
    if collector: collector.after_pass()
    r = random.Random(1); out = []
    logging.disable(logging.INFO)
    for k in range(5):
        name = r.choice(sorted(cl.tenants)); t = cl.tenants[name]; f = t.pools[0]
        e = dataclasses.replace(t, pools=(dataclasses.replace(f, guaranteed=f.guaranteed + 1), *t.pools[1:]), generation=t.generation + 1)
        c = time.perf_counter(); cl.tenants[name] = e
        await d.run_once(now=snap.now + 2 + k)
        at, st = w.patched[(names.TENANT_QUOTA_PLURAL, name)]
        assert at > c and st["pools"][0]["guaranteed"] == f.guaranteed + 1
        out.append(at - c)
        if collector: collector.after_pass()
    return out
q = asyncio.run(quota())
print(json.dumps({"tree": " ".join(sys.argv[1:]), "pass_p50_ms": round(statistics.median(times)*1e3, 1), "cpu_p50_ms": round(statistics.median(cpu)*1e3, 1), "passes_ms": [round(x*1e3) for x in times],
                  "admitted": len(p.admissions), "quota_to_status_p50_ms": round(statistics.median(q)*1e3, 1), "quota_max_ms": round(max(q)*1e3, 1)}))
