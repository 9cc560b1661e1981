"""The kopf handlers: thin adapters from watch events to the store, and the reconcile loop.

``gpufair operator`` imports this module (and :mod:`.webhook_handlers` unless ``--dev``), which
registers everything on kopf's default registry; ``kopf run -m gpufair.operator.handlers`` does
the same without the webhook. What runs:

- ``on.login`` gives kopf the credentials :mod:`gpufair.state.kubeconfig` chooses (kopf's own
  login tries in-cluster before ``$KUBECONFIG``; every gpufair component uses one precedence);
- ``on.startup`` tunes kopf (event reporting, annotation persistence under ``gpufair.dev``,
  peering) and builds the store and the reconciler in ``memo``;
- ``index`` handlers for the same kinds put the initial listings into the store: kopf runs no
  other handler (no ``on.event``, no daemon) until every indexed kind has been listed and each
  listed object went through its index handlers, so the reconcile loop starts on a complete
  store and marks it synced (before that no pass may judge a namespace to belong to no tenant);
- ``on.event`` for pods, nodes, namespaces, TenantQuotas, GPUPools and Jobs feeds the store
  (deletions included, which index handlers never see); Jobs only for the size of an indexed
  Job's pod group, so that its pods are admitted all or nothing (docs/pod-groups.md);
- :func:`watch_owners` adds the same two handlers for the other owner kinds the API server
  serves (JobSets, Kubeflow jobs, upstream PodGroups and Workloads, :mod:`.owners`); ``gpufair
  operator`` calls it after asking discovery, before kopf starts;
- a ``daemon`` on GPUPool objects runs the reconcile loop. Daemons stop while peering pauses
  this replica, so only the leader acts; of the pool daemons, only the one of the
  alphabetically first pool drives passes (the others idle), so there is one loop per process.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

import kopf

from gpufair.api import names
from gpufair.k8s import writes
from gpufair.operator import heap, intents, metrics, owners, reconciler, settings, store, webhook
from gpufair.state import kubeconfig

logger = logging.getLogger(__name__)

FINALIZER = f"{names.GROUP}/finalizer"
PERSISTENCE_PREFIX = names.GROUP
REPORTING_COMPONENT = "gpufair-operator"
WEBHOOK_MODULE = "gpufair.operator.webhook_handlers"


@kopf.on.login()
def login(settings: kopf.OperatorSettings, **_: Any) -> kopf.ConnectionInfo:
    """kopf's connection from :func:`gpufair.state.kubeconfig.use_as_default` (read as kopf's
    ``login_via_client`` reads a client configuration)."""
    config = kubeconfig.use_as_default()
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
        trust_env=settings.networking.trust_env,
    )


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = _config()
    settings.posting.reporting_component = REPORTING_COMPONENT
    settings.posting.reporting_instance = config.reporting_instance
    settings.posting.level = logging.WARNING
    settings.posting.event_name_prefix = "gpufair-"
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=PERSISTENCE_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PERSISTENCE_PREFIX, key="last-handled-configuration"
    )
    settings.peering.mandatory = not config.standalone
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 30
    if not config.dev and WEBHOOK_MODULE in sys.modules:  # the webhook handler is registered
        settings.admission.server = _webhook_server(config)
        if config.webhook_managed:
            settings.admission.managed = names.GROUP
    kubeconfig.use_as_default()
    memo.store = store.ClusterStore()
    memo.heap = heap.Heap()
    # Made here, in the operator's memo: kopf hands each admission call a shallow copy of it,
    # so a ledger made on first use would be a new one per review.
    memo.ledger = webhook.Ledger()
    memo.reconciler = reconciler.Reconciler(
        cluster=memo.store,
        writer=writes.ClusterWriter(),
        events=post_event,
        config=config,
    )


def _config() -> settings.OperatorSettings:
    return settings.current()


def _webhook_server(config: settings.OperatorSettings) -> Any:
    """HTTPS with the given certificate; a tunnel (ngrok or local detection) for local tries.

    Without a certificate kopf would self-sign, which needs the optional ``certbuilder``
    package; rather than failing later with an import error, say what to pass.
    """
    if config.webhook_tunnel:
        return kopf.WebhookAutoTunnel(port=config.webhook_port)
    no_certificate = config.webhook_certfile is None or config.webhook_pkeyfile is None
    if no_certificate and importlib.util.find_spec("certbuilder") is None:
        raise kopf.PermanentError(
            "the admission webhook needs --webhook-cert and --webhook-key"
            " (or --dev to run without the webhook, or --webhook-tunnel)"
        )
    return kopf.WebhookServer(
        port=config.webhook_port,
        host=config.webhook_host,
        certfile=config.webhook_certfile,
        pkeyfile=config.webhook_pkeyfile,
    )


# -- the initial listings into the store -------------------------------------------------------
# kopf's indexing readiness is the one "listed" signal it has: an object's non-index handlers
# wait until every indexed kind's listing is over and all listed objects are indexed. These
# handlers store nothing in kopf's indices (they return None); until the store is synced they
# apply what they see, afterwards the on.event handlers alone keep the store current.


@kopf.index("", "v1", "pods")
def listed_pod(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_pod(body, deleted=False, now=time.time())


@kopf.index("", "v1", "nodes")
def listed_node(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_node(body, deleted=False)


@kopf.index("", "v1", "namespaces")
def listed_namespace(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_namespace(body, deleted=False)


@kopf.index(names.GROUP, names.VERSION, names.TENANT_QUOTA_PLURAL)
def listed_tenant(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_tenant(body, deleted=False)


@kopf.index(names.GROUP, names.VERSION, names.GPU_POOL_PLURAL)
def listed_pool(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_pool(body, deleted=False)


@kopf.index("batch", "v1", "jobs")
def listed_job(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_job(body, deleted=False)


# -- watch events into the store ---------------------------------------------------------------


def _deleted(event: kopf.RawEvent) -> bool:
    return event.get("type") == "DELETED"


@kopf.on.event("", "v1", "pods")
def pod_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_pod(body, deleted=_deleted(event), now=time.time())


@kopf.on.event("", "v1", "nodes")
def node_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_node(body, deleted=_deleted(event))


@kopf.on.event("", "v1", "namespaces")
def namespace_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_namespace(body, deleted=_deleted(event))


@kopf.on.event(names.GROUP, names.VERSION, names.TENANT_QUOTA_PLURAL)
def tenant_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_tenant(body, deleted=_deleted(event))


@kopf.on.event("batch", "v1", "jobs")
def job_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_job(body, deleted=_deleted(event))


def watch_owners(kinds: Iterable[owners.OwnerKind]) -> None:
    """List (an index, so the first pass waits for it) and watch each of ``kinds`` into the
    store's group sizes. Call before kopf starts: kopf sizes its indices at start."""
    for kind in kinds:
        kopf.index(kind.group, kind.version, kind.plural, id=f"listed-{kind.resource}")(
            functools.partial(_listed_owner, kind)
        )
        kopf.on.event(kind.group, kind.version, kind.plural, id=f"{kind.resource}-event")(
            functools.partial(_owner_event, kind)
        )


def _listed_owner(kind: owners.OwnerKind, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if not memo.store.synced:
        memo.store.apply_owner(kind, body, deleted=False)


def _owner_event(
    kind: owners.OwnerKind, event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    memo.store.apply_owner(kind, body, deleted=_deleted(event))


@kopf.on.event(names.GROUP, names.VERSION, names.GPU_POOL_PLURAL)
def pool_event(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.store.apply_pool(body, deleted=_deleted(event))


# -- the reconcile loop ---------------------------------------------------------------------------


@kopf.daemon(
    names.GROUP,
    names.VERSION,
    names.GPU_POOL_PLURAL,
    id="reconcile-loop",
    cancellation_timeout=10.0,
)
async def reconcile_loop(name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **_: Any) -> None:
    """Run passes while this pool's daemon is the driver (see the module docstring)."""
    config = _config()
    cluster: store.ClusterStore = memo.store
    driver: reconciler.Reconciler = memo.reconciler
    cluster.mark_synced()  # kopf starts no daemon before the index handlers had every listing
    while not stopped:
        if name != min(cluster.pools, default=name):
            await stopped.wait(config.tick_seconds)
            continue
        try:
            await asyncio.wait_for(cluster.changed.wait(), timeout=config.tick_seconds)
            await asyncio.sleep(config.debounce_seconds)
        except TimeoutError:
            pass
        if stopped:
            break
        cluster.changed.clear()
        try:
            await driver.run_once(now=time.time())
            memo.heap.after_pass()
        except Exception as error:
            # Single API writes never get here (the reconciler logs and counts them); this is a
            # bug or a broken snapshot. kopf restarts the daemon after the delay.
            metrics.RECONCILE_ERRORS.labels(stage="pass").inc()
            raise kopf.TemporaryError(
                f"reconcile pass failed: {error!r}", delay=config.tick_seconds
            ) from error


# -- events ----------------------------------------------------------------------------------------

_API_VERSIONS = {
    intents.ObjectKind.POD: "v1",
    intents.ObjectKind.TENANT_QUOTA: names.API_VERSION,
    intents.ObjectKind.GPU_POOL: names.API_VERSION,
}


def post_event(event: intents.Event) -> None:
    """Post a Kubernetes Event through kopf's poster (batched, retried, never blocking)."""
    metadata: dict[str, str] = {"name": event.target.name}
    if event.target.namespace:
        metadata["namespace"] = event.target.namespace
    if event.target.uid:
        metadata["uid"] = event.target.uid
    body = {
        "apiVersion": _API_VERSIONS[event.target.kind],
        "kind": str(event.target.kind),
        "metadata": metadata,
    }
    try:
        target: Any = body  # kopf walks plain dicts as bodies
        kopf.event(target, type=str(event.type), reason=event.reason, message=event.message[:1024])
    except LookupError:  # outside a running operator (no poster): log only
        logger.info("event %s %s on %s: %s", event.type, event.reason, body, event.message)
