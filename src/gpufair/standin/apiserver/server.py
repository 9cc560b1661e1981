"""The stand-in Kubernetes API server: kmock's ``KubernetesEmulator`` with API-server semantics.

What is kept from kmock 0.8: the aiohttp ``kmock.Server`` that listens on a port, the handler's
DSL for anything that is not a resource URL (discovery hooks ``_serve_api``/``_serve_apis``/
``_serve_group``/``_serve_version``/``_serve_root``/``_serve_server_version`` are overridden here,
and tests may add reactions such as ``standin['get /healthz'] << 500``), the Kubernetes ``Status``
error rendering, the resource registry (``emulator.resources``, preloaded with kmock's bundled
built-in resources) and the object store (``emulator.objects``).

What is replaced: the request path for resource URLs (``/api/v1/...``, ``/apis/g/v/...``), because
kmock's own parser and action guessing cannot express what gpufair needs. Every gap is listed in
``docs/e2e.md``; in short: 201 on create, ``uid``/``resourceVersion``/``creationTimestamp``/
``generation``, 409 on a stale ``resourceVersion`` and on a duplicate name, PUT, JSON/merge/
strategic/apply patches, selectors, typed lists, watches that resume from a ``resourceVersion``,
CRDs that become served resources with a status subresource, ``pods/binding``, ``pods/eviction``
(with PodDisruptionBudgets), finalizers, namespace deletion, and a minimal kubelet that starts
bound pods.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import logging
import math
import pathlib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock

from gpufair.standin.apiserver import (
    admission,
    audit,
    discovery,
    errors,
    identity,
    patching,
    paths,
    protobuf,
    rbac,
    registry,
    selecting,
    semantics,
    store,
)

logger = logging.getLogger("standin")

_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_BOOTSTRAP_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_WATCH_TICK = 2.0  # seconds between checks that a watch client is still connected
_DEFAULT_WATCH_TIMEOUT = 1800.0  # the real server's --min-request-timeout
_JSON = "application/json"

Matcher = Callable[[Mapping[str, Any]], bool]


@attrs.define(kw_only=True)
class StandIn(kmock.KubernetesEmulator):
    """A Kubernetes API server in memory, good enough for kopf, kubectl and the official client.

    ``kubelet``: when true, a pod that gets a node (by binding, or created with ``spec.nodeName``)
    is admitted against the node's allocatable extended resources and becomes ``Running``
    (or ``Failed`` with reason ``OutOf<resource>``), as a kubelet would; and pods bound to a
    deleted node are failed and deleted, as the pod garbage collector does.
    """

    kubelet: bool = True
    watch_events: int = 20_000  # events kept per resource for watches that resume
    object_history: int = 8  # versions kept per object in ``emulator.objects``
    request_log: int = 1_000  # kmock requests kept for assertions (non-resource URLs only)
    slow_lists: Mapping[str, float] = attrs.field(factory=dict)
    """Seconds to hold back each LIST (not watch) of these plurals: a slow initial listing."""
    audit_log: pathlib.Path | None = None
    """Append each distinct call (who, and what as RBAC sees it) here (:mod:`.audit`)."""
    authorizer: rbac.Authorizer | None = None
    """Refuse the components' calls these roles and bindings do not allow (403)."""
    bookmark_seconds: float = 60.0
    """How often a watch that asked for bookmarks (``allowWatchBookmarks``) gets one: the real
    server's watch cache sends one about every minute, so a quiet watch is not a dead one."""

    _registry: registry.Registry = attrs.field(init=False)
    _store: store.Store = attrs.field(init=False)
    _stopping: asyncio.Event = attrs.field(init=False, factory=asyncio.Event)
    _gate: audit.Gate = attrs.field(init=False, factory=audit.Gate)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        recorder = audit.Recorder(self.audit_log) if self.audit_log is not None else None
        self._gate = audit.Gate(recorder=recorder, authorizer=self.authorizer)
        self._registry = registry.Registry(self.resources)
        self._registry.load_builtins()
        self._store = store.Store(
            self.objects, events=self.watch_events, history=self.object_history
        )
        self.fallback["get /openapi/v3"] << (lambda: discovery.openapi_v3_index(self._registry))
        self.fallback["get", re.compile(r"/openapi/v3/.+")] << self._serve_openapi_v3
        for probe in ("/healthz", "/livez", "/readyz"):
            self.fallback[f"get {probe}"] << b"ok"
        namespaces = self._spec("", "v1", "namespaces")
        for name in _BOOTSTRAP_NAMESPACES:
            body = {"metadata": {"name": name}}
            self._store.put(
                namespaces, semantics.prepare_create(namespaces, body, namespace=None), None
            )

    # ---------------------------------------------------------------- public helpers

    @property
    def resource_registry(self) -> registry.Registry:
        """The served resources (built-ins and CRDs)."""
        return self._registry

    @property
    def object_store(self) -> store.Store:
        """Objects, revisions and watch logs (``objects`` is kmock's view of the same objects)."""
        return self._store

    def stop_watches(self) -> None:
        """End every watch stream (before shutting the server down)."""
        self._stopping.set()

    # ---------------------------------------------------------------- kmock entry point

    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        refused = self._gate.admit(
            method=raw.method,
            path=raw.path,
            query={key: raw.query.getall(key) for key in raw.query},
            authorization=raw.headers.get("Authorization"),
        )
        if refused is not None:
            return _json(refused.to_status(), status=refused.status)
        admission.CALLER.set(identity.authenticate(raw.headers.get("Authorization")))
        route = paths.parse(raw.path)
        if raw.method == "GET" and raw.path == "/openapi/v2":
            return _openapi_v2(raw.headers.get("Accept", ""))
        if route is None:
            response = await super().__call__(raw)
            self._trim_kmock_records()
            return response
        started = time.monotonic()
        try:
            response = await self._serve(route, raw)
        except errors.StatusError as exc:
            response = _json(exc.to_status(), status=exc.status)
        except Exception as exc:  # a bug here must reach the client as a 500, and the log
            logger.exception("internal error serving %s %s", raw.method, raw.path_qs)
            status = errors.StatusError(500, errors.Reason.INTERNAL_ERROR, repr(exc))
            response = _json(status.to_status(), status=500)
        logger.info(
            "%s %s -> %s (%.1f ms)",
            raw.method,
            raw.path_qs,
            response.status,
            (time.monotonic() - started) * 1000,
        )
        return response

    def _trim_kmock_records(self) -> None:
        # kmock keeps every request (and every escalated error) for assertions; bound them.
        if len(self._requests) > self.request_log:
            del self._requests[: -self.request_log]
        for payload in self._payloads:
            if len(payload._requests) > self.request_log:
                del payload._requests[: -self.request_log]
        for errs in self._errors:
            del errs[:]

    # ---------------------------------------------------------------- discovery (kmock hooks)

    async def _serve_root(self, request: kmock.Request) -> kmock.Payload:
        return discovery.root_paths(self._registry)

    async def _serve_server_version(self, request: kmock.Request) -> kmock.Payload:
        return dict(discovery.SERVER_VERSION)

    async def _serve_api(self, request: kmock.Request) -> kmock.Payload:
        return discovery.api_versions()

    async def _serve_apis(self, request: kmock.Request) -> kmock.Payload:
        return discovery.api_group_list(self._registry)

    async def _serve_group(self, request: kmock.Request) -> kmock.Payload:
        group = request.resource.group if request.resource is not None else None
        document = discovery.api_group(self._registry, group or "")
        if document is None:
            raise errors.not_found(plural="", group=group or "", name=None)
        return document

    async def _serve_version(self, request: kmock.Request) -> kmock.Payload:
        resource = request.resource
        if resource is None or resource.version is None:
            raise errors.not_found(plural="", group="", name=None)
        document = discovery.api_resource_list(
            self._registry, resource.group or "", resource.version
        )
        if document is None:
            raise errors.not_found(plural="", group=resource.group or "", name=None)
        return document

    async def _serve_openapi_v3(self, request: kmock.Request) -> kmock.Payload:
        key = request.url.path.removeprefix("/openapi/v3/")
        document = discovery.openapi_v3_group_version(self._registry, key)
        if document is None:
            raise errors.StatusError(404, errors.Reason.NOT_FOUND, f"no OpenAPI document {key!r}")
        return document

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, errors.StatusError):
            return _json(exc.to_status(), status=exc.status)
        return await super()._render_error(exc)

    # ---------------------------------------------------------------- resource requests

    def _spec(self, group: str, version: str, plural: str) -> registry.ResourceSpec:
        spec = self._registry.lookup(group, version, plural)
        if spec is None:
            raise errors.StatusError(
                404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
            )
        return spec

    async def _serve(
        self, route: paths.Route, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        spec = self._spec(route.group, route.version, route.plural)
        if route.namespace is not None and not spec.namespaced:
            raise errors.StatusError(
                404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
            )
        query = raw.query
        body = await raw.read()
        method = raw.method.upper()
        sub = route.subresource
        dry_run = bool(query.getall("dryRun", []))
        if sub is not None and sub not in spec.subresources:
            raise errors.StatusError(
                404, errors.Reason.NOT_FOUND, "the server could not find the requested resource"
            )

        def payload(empty: Any = None) -> Any:
            return _decode(body, content_type=raw.headers.get("Content-Type", ""), empty=empty)

        if method == "GET" and query.get("watch", "") in _TRUE:
            return await self._watch(spec, route, raw)
        if method == "GET" and route.name is None:
            if spec.plural in self.slow_lists:
                await asyncio.sleep(self.slow_lists[spec.plural])
            return self._list(spec, route, raw)
        if method == "GET" and sub is None and discovery.wants_table(raw.headers.get("Accept")):
            obj = self._get(spec, route)  # kubectl get KIND NAME: a one-row Table
            list_meta = {"resourceVersion": obj.get("metadata", {}).get("resourceVersion", "")}
            return _json(discovery.table(spec, [obj], list_meta=list_meta))
        if method == "GET":
            return _json(self._get(spec, route))
        if method == "POST" and route.name is None:
            if spec.namespaced and route.namespace is None:
                raise errors.method_not_allowed(
                    f"create {spec.plural} needs a namespace in the URL: "
                    f"/…/namespaces/NAMESPACE/{spec.plural}"
                )
            if spec.group == "" and spec.plural == "bindings":
                return _json(self._bind(route, payload(), dry_run=dry_run), status=201)
            created = await self._create(spec, route.namespace, payload(), dry_run=dry_run)
            return _json(created, status=201)
        if method == "POST" and sub == "binding":
            return _json(self._bind(route, payload(), dry_run=dry_run), status=201)
        if method == "POST" and sub == "eviction":
            return _json(self._evict(route, payload(), dry_run=dry_run), status=201)
        if method == "PUT" and route.name is not None:
            return _json(await self._update(spec, route, payload(), dry_run=dry_run))
        if method == "PATCH" and route.name is not None:
            return await self._patch(spec, route, raw, body, dry_run=dry_run)
        if method == "DELETE" and route.name is not None and sub is None:
            deleted = self._delete(
                spec, route.namespace, route.name, payload(empty={}), dry_run=dry_run
            )
            return _json(deleted)
        if method == "DELETE" and route.name is None:
            return _json(self._delete_collection(spec, route, raw, dry_run=dry_run))
        raise errors.method_not_allowed(f"{method} is not supported on {raw.path}")

    # ------------------------------------------------------------------ reads

    def _get(self, spec: registry.ResourceSpec, route: paths.Route) -> dict[str, Any]:
        assert route.name is not None
        obj = self._store.get(spec, route.namespace, route.name)
        if not obj:
            raise errors.not_found(plural=spec.plural, group=spec.group, name=route.name)
        return obj

    def _matcher(self, raw: aiohttp.web.BaseRequest, route: paths.Route) -> Matcher:
        try:
            accept = selecting.matcher(
                label_selector=raw.query.get("labelSelector"),
                field_selector=raw.query.get("fieldSelector"),
            )
        except selecting.SelectorError as exc:
            raise errors.bad_request(str(exc)) from exc
        if route.name is None:
            return accept
        return lambda obj: obj.get("metadata", {}).get("name") == route.name and accept(obj)

    def _list(
        self, spec: registry.ResourceSpec, route: paths.Route, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        accept = self._matcher(raw, route)
        items = [obj for obj in self._store.items(spec, route.namespace) if accept(obj)]
        revision = str(self._store.revision)
        cont = raw.query.get("continue")
        if cont:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(cont.encode())))
            except ValueError as exc:
                raise errors.bad_request(f"invalid continue token: {exc}") from exc
            items = [obj for obj in items if _sort_key(obj) > after]
        list_meta: dict[str, Any] = {"resourceVersion": revision}
        limit = int(raw.query.get("limit") or 0)
        if limit > 0 and len(items) > limit:
            items = items[:limit]
            token = json.dumps(list(_sort_key(items[-1]))).encode()
            list_meta["continue"] = base64.urlsafe_b64encode(token).decode()
        if discovery.wants_table(raw.headers.get("Accept")):
            return _json(discovery.table(spec, items, list_meta=list_meta))
        return _json(
            {
                "apiVersion": spec.api_version,
                "kind": f"{spec.kind}List",
                "metadata": list_meta,
                "items": items,
            }
        )

    async def _watch(
        self, spec: registry.ResourceSpec, route: paths.Route, raw: aiohttp.web.BaseRequest
    ) -> aiohttp.web.StreamResponse:
        accept = self._matcher(raw, route)
        since = raw.query.get("resourceVersion") or ""
        timeout = float(raw.query.get("timeoutSeconds") or _DEFAULT_WATCH_TIMEOUT)
        initial_events = raw.query.get("sendInitialEvents", "") in _TRUE
        log = self._store.log(spec)

        def in_scope(obj: Mapping[str, Any]) -> bool:
            namespace = obj.get("metadata", {}).get("namespace")
            return route.namespace is None or namespace == route.namespace

        pending: list[dict[str, Any]] = []
        if since in ("", "0") or initial_events:
            position = self._store.revision
            for obj in self._store.items(spec, route.namespace):
                if accept(obj):
                    pending.append({"type": store.EventType.ADDED, "object": obj})
            if initial_events:
                bookmark = {
                    "kind": spec.kind,
                    "apiVersion": spec.api_version,
                    "metadata": {
                        "resourceVersion": str(position),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                pending.append({"type": "BOOKMARK", "object": bookmark})
        else:
            try:
                position = int(since)
            except ValueError as exc:
                raise errors.bad_request(f"invalid resourceVersion {since!r}") from exc

        bookmarks = raw.query.get("allowWatchBookmarks", "") in _TRUE
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = _JSON
        response.enable_chunked_encoding()
        await response.prepare(raw)
        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + self.bookmark_seconds if bookmarks else math.inf
        try:
            if position < log.compacted:
                await _write_event(response, _expired(position))
                return response
            for initial in pending:
                await _write_event(response, initial)
            while not self._stopping.is_set():
                for event in log.since(position):
                    position = event.revision
                    shown = _visible(event, accept, in_scope)
                    if shown is not None:
                        await _write_event(response, shown)
                if time.monotonic() >= next_bookmark:
                    await _write_event(response, _bookmark(spec, position))
                    next_bookmark = time.monotonic() + self.bookmark_seconds
                remaining = deadline - time.monotonic()
                if remaining <= 0 or raw.transport is None or raw.transport.is_closing():
                    break
                if self._registry.lookup(spec.group, spec.version, spec.plural) is None:
                    break  # the CRD was deleted: the real server closes its watches too
                await _wait_any(
                    self._store.changed(spec),
                    self._stopping.wait(),
                    timeout=max(0.0, min(remaining, _WATCH_TICK, next_bookmark - time.monotonic())),
                )
                if position < log.compacted:
                    await _write_event(response, _expired(position))
                    break
        except (ConnectionError, asyncio.CancelledError):
            return response
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # ------------------------------------------------------------------ writes

    async def _create(
        self,
        spec: registry.ResourceSpec,
        namespace: str | None,
        body: Any,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        obj = semantics.prepare_create(spec, body, namespace=namespace)
        metadata = obj["metadata"]
        if spec.namespaced:
            self._require_namespace(metadata["namespace"])
        if self._store.get(spec, metadata.get("namespace"), metadata["name"]):
            raise errors.already_exists(plural=spec.plural, group=spec.group, name=metadata["name"])
        if spec.group == "apiextensions.k8s.io" and spec.plural == "customresourcedefinitions":
            self._accept_crd(obj, dry_run=True)
        if dry_run:
            return obj
        identity = {
            k: metadata[k]
            for k in ("name", "namespace", "uid", "creationTimestamp")
            if k in metadata
        }
        obj = await self._admit(spec, "CREATE", obj, None, None)
        obj.setdefault("metadata", {}).update(identity)  # webhooks cannot rename or re-identify
        if self._store.get(spec, identity.get("namespace"), identity["name"]):  # raced meanwhile
            raise errors.already_exists(plural=spec.plural, group=spec.group, name=identity["name"])
        if spec.group == "apiextensions.k8s.io" and spec.plural == "customresourcedefinitions":
            self._accept_crd(obj, dry_run=False)
        created = self._store.put(spec, obj, None)
        if spec.group == "" and spec.kind == "Pod" and (created.get("spec") or {}).get("nodeName"):
            created = self._start_pod(created)
        return created

    async def _admit(
        self,
        spec: registry.ResourceSpec,
        operation: str,
        obj: dict[str, Any],
        old: Mapping[str, Any] | None,
        subresource: str | None,
    ) -> dict[str, Any]:
        return await admission.admit(
            objects=self._store,
            served=self._registry,
            spec=spec,
            operation=operation,
            obj=obj,
            old=old,
            subresource=subresource,
        )

    def _require_namespace(self, namespace: str) -> None:
        namespaces = self._spec("", "v1", "namespaces")
        found = self._store.get(namespaces, None, namespace)
        if not found:
            raise errors.not_found(plural="namespaces", group="", name=namespace)
        if found["metadata"].get("deletionTimestamp"):
            raise errors.StatusError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because "
                "it is being terminated",
            )

    def _accept_crd(self, crd: dict[str, Any], *, dry_run: bool) -> None:
        try:
            probe = registry.Registry(kmock.ResourcesArray())
            probe.register_crd(crd)
        except (ValueError, KeyError, TypeError) as exc:
            raise errors.invalid(
                kind="CustomResourceDefinition",
                group="apiextensions.k8s.io",
                name=crd["metadata"]["name"],
                why=str(exc),
            ) from exc
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": {
                k: v
                for k, v in names.items()
                if k in ("plural", "singular", "kind", "listKind", "shortNames", "categories")
            },
            "storedVersions": [
                v["name"] for v in crd["spec"].get("versions", []) if v.get("storage")
            ],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": semantics.now(),
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        if not dry_run:
            self._registry.register_crd(crd)

    def _check_preconditions(
        self, spec: registry.ResourceSpec, current: Mapping[str, Any], wanted: Mapping[str, Any]
    ) -> None:
        expected = (wanted.get("metadata") or {}).get("resourceVersion")
        if expected and str(expected) != current["metadata"]["resourceVersion"]:
            raise errors.conflict(
                plural=spec.plural,
                group=spec.group,
                name=current["metadata"]["name"],
                why=errors.STALE,
            )

    async def _update(
        self, spec: registry.ResourceSpec, route: paths.Route, body: Any, *, dry_run: bool
    ) -> dict[str, Any]:
        current = self._get(spec, route)
        if not isinstance(body, Mapping):
            raise errors.bad_request("the request body must be a JSON object")
        self._check_preconditions(spec, current, body)
        new = semantics.prepare_update(spec, body, current, subresource=route.subresource)
        return await self._commit(spec, new, current, route.subresource, dry_run=dry_run)

    async def _patch(
        self,
        spec: registry.ResourceSpec,
        route: paths.Route,
        raw: aiohttp.web.BaseRequest,
        body: bytes,
        *,
        dry_run: bool,
    ) -> aiohttp.web.StreamResponse:
        kind = patching.patch_type(raw.headers.get("Content-Type"))
        if kind is None:
            raise errors.unsupported_media_type(raw.headers.get("Content-Type", ""))
        try:
            patch = patching.decode(kind, body)
        except patching.PatchError as exc:
            raise errors.bad_request(str(exc)) from exc
        assert route.name is not None
        current = self._store.get(spec, route.namespace, route.name)
        if not current and kind is patching.PatchType.APPLY and route.subresource is None:
            if not isinstance(patch, Mapping):
                raise errors.bad_request("an applied configuration must be an object")
            name = (patch.get("metadata") or {}).get("name")
            if name != route.name:
                raise errors.bad_request(
                    f"the name of the applied object ({name}) does not match the URL's "
                    f"({route.name})"
                )
            created = await self._create(spec, route.namespace, patch, dry_run=dry_run)
            return _json(created, status=201)
        if not current:
            raise errors.not_found(plural=spec.plural, group=spec.group, name=route.name)
        try:
            patched = patching.apply(kind, current, patch)
        except patching.PatchError as exc:
            raise errors.invalid(
                kind=spec.kind, group=spec.group, name=route.name, why=str(exc)
            ) from exc
        # A patch that sets metadata.resourceVersion is an optimistic-concurrency precondition.
        self._check_preconditions(spec, current, patched)
        new = semantics.prepare_update(spec, patched, current, subresource=route.subresource)
        committed = await self._commit(spec, new, current, route.subresource, dry_run=dry_run)
        return _json(committed)

    async def _commit(
        self,
        spec: registry.ResourceSpec,
        new: dict[str, Any],
        current: dict[str, Any],
        subresource: str | None,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Store an update (no-op when nothing changed), finishing a pending deletion."""
        revision = current["metadata"]["resourceVersion"]
        new["metadata"]["resourceVersion"] = revision
        if new == current or dry_run:
            return new
        new = await self._admit(spec, "UPDATE", new, current, subresource)
        metadata = current["metadata"]
        latest = self._store.get(spec, metadata.get("namespace"), metadata["name"])
        if not latest or latest["metadata"]["resourceVersion"] != revision:  # raced meanwhile
            raise errors.conflict(
                plural=spec.plural, group=spec.group, name=metadata["name"], why=errors.STALE
            )
        new["metadata"]["resourceVersion"] = revision
        if new == current:
            return new
        if spec.group == "apiextensions.k8s.io" and spec.plural == "customresourcedefinitions":
            self._accept_crd(new, dry_run=False)
        metadata = new["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self._remove(spec, new)
        stored = self._store.put(spec, new, current)
        if (
            spec.group == ""
            and spec.kind == "Pod"
            and (stored.get("spec") or {}).get("nodeName")
            and not (current.get("spec") or {}).get("nodeName")
        ):
            stored = self._start_pod(stored)
        return stored

    def _delete(
        self,
        spec: registry.ResourceSpec,
        namespace: str | None,
        name: str,
        options: Any,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        current = self._store.get(spec, namespace, name)
        if not current:
            raise errors.not_found(plural=spec.plural, group=spec.group, name=name)
        preconditions = (options or {}).get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
            raise errors.conflict(
                plural=spec.plural,
                group=spec.group,
                name=name,
                why=f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )
        rv = preconditions.get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(plural=spec.plural, group=spec.group, name=name, why=errors.STALE)
        if dry_run:
            return current
        metadata = current["metadata"]
        if metadata.get("deletionTimestamp"):
            return current
        if metadata.get("finalizers"):
            marked = copy.deepcopy(current)
            marked["metadata"]["deletionTimestamp"] = semantics.now()
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._store.put(spec, marked, current)
        return self._remove(spec, current)

    def _remove(self, spec: registry.ResourceSpec, obj: dict[str, Any]) -> dict[str, Any]:
        """Delete for good, with what the real server's controllers would do right after."""
        removed = self._store.remove(spec, obj)
        if spec.group == "apiextensions.k8s.io" and spec.plural == "customresourcedefinitions":
            for served in self._registry.unregister_crd(obj["metadata"]["name"]):
                self._purge(served, namespace=None)
                self._store.forget(served)
        if spec.group == "" and spec.plural == "namespaces":
            for other in list(self._registry):
                if other.namespaced:
                    self._purge(other, namespace=obj["metadata"]["name"])
        if spec.group == "" and spec.plural == "nodes" and self.kubelet:
            self._collect_orphans(obj["metadata"]["name"])
        return removed

    def _collect_orphans(self, node_name: str) -> None:
        """PodGC: pods bound to a deleted node fail (``DisruptionTarget``) and are deleted."""
        pods = self._spec("", "v1", "pods")
        for pod in self._store.items(pods, None):
            if (pod.get("spec") or {}).get("nodeName") != node_name:
                continue
            failed = copy.deepcopy(pod)
            status = failed.setdefault("status", {})
            if status.get("phase") not in ("Succeeded", "Failed"):
                status["phase"] = "Failed"
            semantics.set_condition(
                failed,
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByPodGC",
                    "message": "PodGC: node no longer exists",
                    "lastTransitionTime": semantics.now(),
                },
            )
            stored = self._store.put(pods, failed, pod)
            self._store.remove(pods, stored)

    def _purge(self, spec: registry.ResourceSpec, *, namespace: str | None) -> None:
        for obj in self._store.items(spec, namespace):
            self._store.remove(spec, obj)

    def _delete_collection(
        self,
        spec: registry.ResourceSpec,
        route: paths.Route,
        raw: aiohttp.web.BaseRequest,
        *,
        dry_run: bool,
    ) -> dict[str, Any]:
        accept = self._matcher(raw, route)
        deleted = []
        for obj in self._store.items(spec, route.namespace):
            if accept(obj):
                metadata = obj["metadata"]
                deleted.append(
                    self._delete(
                        spec, metadata.get("namespace"), metadata["name"], {}, dry_run=dry_run
                    )
                )
        return {
            "apiVersion": spec.api_version,
            "kind": f"{spec.kind}List",
            "metadata": {"resourceVersion": str(self._store.revision)},
            "items": deleted,
        }

    # ------------------------------------------------------------------ pods

    def _pod(
        self, namespace: str | None, name: str
    ) -> tuple[registry.ResourceSpec, dict[str, Any]]:
        pods = self._spec("", "v1", "pods")
        pod = self._store.get(pods, namespace, name)
        if not pod:
            raise errors.not_found(plural="pods", group="", name=name)
        return pods, pod

    def _bind(self, route: paths.Route, body: Any, *, dry_run: bool) -> dict[str, Any]:
        """``pods/binding`` (or legacy ``bindings``): set ``spec.nodeName`` like a scheduler."""
        if not isinstance(body, Mapping):
            raise errors.bad_request("the request body must be a Binding object")
        metadata = body.get("metadata") or {}
        name = route.name or metadata.get("name")
        if not name:
            raise errors.bad_request("a Binding needs metadata.name (the pod's name)")
        target = (body.get("target") or {}).get("name")
        if not target:
            raise errors.invalid(
                kind="Binding", group="", name=name, why="target.name: Required value"
            )
        pods, pod = self._pod(route.namespace, name)

        def refuse(why: str) -> errors.StatusError:
            return errors.conflict(plural="pods/binding", group="", name=name, why=why)

        if metadata.get("uid") and metadata["uid"] != pod["metadata"]["uid"]:
            raise refuse(
                f"Precondition failed: UID in precondition: {metadata['uid']}, "
                f"UID in object meta: {pod['metadata']['uid']}"
            )
        if (pod.get("spec") or {}).get("nodeName"):
            raise refuse(f"pod {name} is already assigned to node {pod['spec']['nodeName']!r}")
        if (pod.get("spec") or {}).get("schedulingGates"):
            raise refuse(f"pod {name} has non-empty .spec.schedulingGates")
        if pod["metadata"].get("deletionTimestamp"):
            raise refuse(f"pod {name} is being deleted, cannot be assigned to a host")
        success = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }
        if dry_run:
            return success
        bound = copy.deepcopy(pod)
        bound["spec"]["nodeName"] = target
        annotations = metadata.get("annotations") or {}
        if annotations:
            bound["metadata"].setdefault("annotations", {}).update(annotations)
        semantics.set_condition(
            bound,
            {
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": None,
                "lastTransitionTime": semantics.now(),
            },
        )
        stored = self._store.put(pods, bound, pod)
        self._start_pod(stored)
        return success

    def _start_pod(self, pod: dict[str, Any]) -> dict[str, Any]:
        """The kubelet's part: admit the pod on its node and mark it Running (or Failed)."""
        if not self.kubelet or (pod.get("status") or {}).get("phase") not in (None, "Pending"):
            return pod
        pods = self._spec("", "v1", "pods")
        nodes = self._spec("", "v1", "nodes")
        node_name = pod["spec"]["nodeName"]
        node = self._store.get(nodes, None, node_name)
        started = copy.deepcopy(pod)
        status = started.setdefault("status", {})
        status["startTime"] = semantics.now()
        shortage = self._shortage(pods, pod, node) if node else None
        if not node:
            status.update(
                phase="Failed", reason="NodeNotFound", message=f"Node {node_name} does not exist"
            )
        elif shortage:
            status.update(
                phase="Failed",
                reason=f"OutOf{shortage}",
                message=f"Pod was rejected: Node didn't have enough resource: {shortage}",
            )
        else:
            status["phase"] = "Running"
            status["hostIP"] = "127.0.0.1"
            for condition in ("Initialized", "ContainersReady", "Ready"):
                semantics.set_condition(
                    started,
                    {
                        "type": condition,
                        "status": "True",
                        "lastProbeTime": None,
                        "lastTransitionTime": semantics.now(),
                    },
                )
        return self._store.put(pods, started, pod)

    def _shortage(
        self, pods: registry.ResourceSpec, pod: Mapping[str, Any], node: Mapping[str, Any]
    ) -> str | None:
        """The first extended resource the node lacks for ``pod`` (running pods counted)."""
        wanted = semantics.pod_requests(pod)
        if not wanted:
            return None
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        node_name = node["metadata"]["name"]
        used: dict[str, int] = {}
        for other in self._store.items(pods, None):
            if other["metadata"]["uid"] == pod["metadata"]["uid"]:
                continue
            if (other.get("spec") or {}).get("nodeName") != node_name:
                continue
            if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for resource, amount in semantics.pod_requests(other).items():
                used[resource] = used.get(resource, 0) + amount
        for resource, amount in sorted(wanted.items()):
            try:
                capacity = int(str(allocatable.get(resource, 0)))
            except ValueError:
                capacity = 0
            if used.get(resource, 0) + amount > capacity:
                return resource
        return None

    def _evict(self, route: paths.Route, body: Any, *, dry_run: bool) -> dict[str, Any]:
        """``pods/eviction``: delete the pod unless a PodDisruptionBudget forbids it (429).

        As the real server: a dry run (the ``dryRun=All`` query parameter or
        ``deleteOptions.dryRun: [All]`` in the body, the only value allowed) answers exactly
        what the eviction would, budgets included, and changes nothing; a pod matched by more
        than one budget cannot be evicted (500).
        """
        assert route.name is not None
        if not isinstance(body, Mapping):
            raise errors.bad_request("the request body must be an Eviction object")
        options = dict(body.get("deleteOptions") or {})
        in_body = options.get("dryRun") or []
        if in_body not in ([], ["All"]):
            raise errors.bad_request(f'Unsupported value: {in_body!r}: supported values: "All"')
        dry_run = dry_run or bool(in_body)
        pods, pod = self._pod(route.namespace, route.name)
        phase = (pod.get("status") or {}).get("phase")
        if phase not in ("Succeeded", "Failed", "Pending") and not pod["metadata"].get(
            "deletionTimestamp"
        ):
            self._check_disruption_budgets(pods, pod)
        self._delete(pods, route.namespace, route.name, options, dry_run=dry_run)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    def _check_disruption_budgets(
        self, pods: registry.ResourceSpec, pod: Mapping[str, Any]
    ) -> None:
        """The disruption controller's arithmetic, done at eviction time."""
        budgets = self._registry.lookup("policy", "v1", "poddisruptionbudgets")
        if budgets is None:
            return
        namespace = pod["metadata"]["namespace"]
        labels = pod["metadata"].get("labels") or {}
        matching = [
            budget
            for budget in self._store.items(budgets, namespace)
            if (budget.get("spec") or {}).get("selector") is not None
            and _match_label_selector(budget["spec"]["selector"], labels)
        ]
        if len(matching) > 1:
            raise errors.StatusError(
                500,
                errors.Reason.INTERNAL_ERROR,
                "This pod has more than one PodDisruptionBudget, which the eviction subresource"
                " does not support.",
            )
        for budget in matching:
            selector = budget["spec"]["selector"]
            members = [
                p
                for p in self._store.items(pods, namespace)
                if _match_label_selector(selector, p["metadata"].get("labels") or {})
                and not p["metadata"].get("deletionTimestamp")
            ]
            healthy = sum(1 for p in members if (p.get("status") or {}).get("phase") == "Running")
            expected = len(members)
            spec = budget.get("spec") or {}
            if "minAvailable" in spec:
                desired = _scaled(spec["minAvailable"], expected)
            elif "maxUnavailable" in spec:
                desired = expected - _scaled(spec["maxUnavailable"], expected)
            else:
                continue
            if healthy - 1 < desired:
                raise errors.too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    details={
                        "causes": [
                            {
                                "reason": "DisruptionBudget",
                                "message": f"The disruption budget {budget['metadata']['name']} "
                                f"needs {desired} healthy pods and has {healthy} currently",
                            }
                        ]
                    },
                )


# -------------------------------------------------------------------- helpers


def _json(body: Any, *, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status, content_type=_JSON)


def _openapi_v2(accept: str) -> aiohttp.web.Response:
    """An empty OpenAPI v2 document, as protobuf (kubectl's choice) or JSON.

    An empty protobuf message is a valid, empty ``openapi_v2.Document``: kubectl finds no schema
    for any kind and skips client-side validation of it ("schemaless object"), which is what
    older kubectl versions (Debian's ``kubernetes-client``) need to ``apply`` at all.
    """
    if "protobuf" in accept:
        return aiohttp.web.Response(
            body=b"", content_type="application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        )
    return _json(discovery.openapi_v2())


def _decode(body: bytes, *, content_type: str, empty: Any = None) -> Any:
    if not body.strip():
        return empty
    if content_type.split(";")[0].strip() == protobuf.MEDIA_TYPE:
        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise errors.StatusError(
                415,
                errors.Reason.UNSUPPORTED_MEDIA_TYPE,
                f"the stand-in API server speaks JSON only ({exc}); send JSON, e.g. with "
                "`kubectl apply -f` or `kubectl create -f` instead of a typed kubectl command",
            ) from exc
    try:
        return json.loads(body)
    except ValueError as exc:
        raise errors.bad_request(f"the request body is not valid JSON: {exc}") from exc


def _sort_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return (metadata.get("namespace") or "", metadata.get("name") or "")


def _bookmark(spec: registry.ResourceSpec, position: int) -> dict[str, Any]:
    """A BOOKMARK event: the watch is alive and has sent everything up to ``position``."""
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": spec.kind,
            "apiVersion": spec.api_version,
            "metadata": {"resourceVersion": str(position)},
        },
    }


def _expired(position: int) -> dict[str, Any]:
    status = errors.gone(f"too old resource version: {position}")
    return {"type": "ERROR", "object": status.to_status()}


def _visible(
    event: store.Event,
    accept: Matcher,
    in_scope: Matcher,
) -> dict[str, Any] | None:
    """The event as a watcher with these selectors sees it (objects can enter or leave)."""
    if not in_scope(event.obj):
        return None
    now_matches = accept(event.obj)
    if event.type != store.EventType.MODIFIED:
        return {"type": event.type, "object": event.obj} if now_matches else None
    was_matching = event.old is not None and accept(event.old)
    if now_matches and was_matching:
        return {"type": store.EventType.MODIFIED, "object": event.obj}
    if now_matches:
        return {"type": store.EventType.ADDED, "object": event.obj}
    if was_matching:
        assert event.old is not None
        gone = copy.deepcopy(event.old)
        gone["metadata"]["resourceVersion"] = event.obj["metadata"]["resourceVersion"]
        return {"type": store.EventType.DELETED, "object": gone}
    return None


async def _write_event(response: aiohttp.web.StreamResponse, event: Mapping[str, Any]) -> None:
    await response.write(json.dumps(event).encode() + b"\n")


async def _wait_any(*aws: Any, timeout: float) -> None:
    tasks = [asyncio.ensure_future(aw) for aw in aws]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def _match_label_selector(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A ``metav1.LabelSelector`` (``matchLabels`` + ``matchExpressions``); empty matches all."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _scaled(value: int | str, total: int) -> int:
    """An ``IntOrString``: an integer, or a percentage of ``total`` rounded up."""
    if isinstance(value, str) and value.endswith("%"):
        return -(-int(value[:-1]) * total // 100)
    return int(value)
