"""Where and how the extender listens: the trust boundary of its verbs.

The extender holds cluster-wide ``pods/binding`` rights, so whoever reaches ``POST /bind`` can
place pods. By default it listens on 127.0.0.1 inside kube-scheduler's own pod, so nothing else
can reach it. Run apart (a cluster's own kube-scheduler calling it), it serves HTTPS and
requires a client certificate signed by the configured CA (mutual TLS; kube-scheduler's
extender ``tlsConfig``). Plain HTTP on another address needs ``--insecure`` and is logged as a
warning. Probes and ``/metrics`` are served on a separate plain-HTTP port without the verbs, so
kubelet and Prometheus need neither loopback nor a client certificate.

Certificates are reloaded when their files change (cert-manager renews them in place): a
fresh ``SSLContext`` is built, and each new connection is switched to it from the listening
socket's context (``sni_callback``), so renewals need no restart and old CAs really go away.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import ssl
import threading
from typing import Any

from gpufair.extender import settings

log = logging.getLogger(__name__)


class ListenerError(ValueError):
    """The listener settings are unsafe or incomplete; the message names the flags."""


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    cert: str
    key: str
    client_ca: str

    def paths(self) -> tuple[str, str, str]:
        return (self.cert, self.key, self.client_ca)


@dataclasses.dataclass(frozen=True)
class Listener:
    """The decision: where the verbs listen, with which TLS, and what to warn about."""

    host: str
    port: int
    tls: TlsFiles | None
    warning: str | None = None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def decide(config: settings.ExtenderSettings) -> Listener:
    """The listener for these settings, or :class:`ListenerError` when they are unsafe."""
    given = {
        "--tls-cert-file": config.tls_cert_file,
        "--tls-key-file": config.tls_key_file,
        "--tls-client-ca-file": config.tls_client_ca_file,
    }
    missing = [flag for flag, value in given.items() if not value]
    host, port = config.extender_host, config.extender_port
    cert, key, client_ca = config.tls_cert_file, config.tls_key_file, config.tls_client_ca_file
    if cert and key and client_ca:
        return Listener(host=host, port=port, tls=TlsFiles(cert, key, client_ca))
    if len(missing) < len(given):
        raise ListenerError(
            "mutual TLS needs all of --tls-cert-file, --tls-key-file and --tls-client-ca-file;"
            f" missing {', '.join(missing)}"
        )
    if is_loopback(host):
        return Listener(host=host, port=port, tls=None)
    if not config.insecure:
        raise ListenerError(
            f"--host {host} is not a loopback address: the verbs would take unauthenticated"
            " binds from anyone who reaches the port. Listen on 127.0.0.1 beside"
            " kube-scheduler, or give --tls-cert-file, --tls-key-file and --tls-client-ca-file"
            " (mutual TLS), or pass --insecure to accept the risk"
        )
    return Listener(
        host=host,
        port=port,
        tls=None,
        warning=f"--insecure: serving the verbs over plain HTTP on {host}:{port}; anyone who"
        " reaches this port can bind any pending GPU pod",
    )


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """A TLS server context that requires a client certificate signed by ``files.client_ca``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert, files.key)
    context.load_verify_locations(cafile=files.client_ca)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


class ReloadingContext:
    """The listening socket's context, which hands each new connection the newest context."""

    def __init__(self, files: TlsFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stamp = self._stamps()
        self.current = server_context(files)
        self.listening = server_context(files)
        self.listening.sni_callback = self._switch

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        found = []
        for path in self.files.paths():
            try:
                info = os.stat(path)
            except OSError:
                found.append((-1, -1))
            else:
                found.append((info.st_mtime_ns, info.st_size))
        return tuple(found)

    def _switch(self, connection: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        connection.context = self.current

    def reload_if_changed(self) -> bool:
        """Build a new context when a file changed; a broken new file keeps the old one."""
        stamp = self._stamps()
        if stamp == self._stamp:
            return False
        with self._lock:
            try:
                fresh = server_context(self.files)
            except (OSError, ssl.SSLError) as exc:
                log.error("TLS files changed but cannot be loaded (%s); keeping the old ones", exc)
                return False
            self._stamp, self.current = stamp, fresh
        log.info("TLS certificate files changed; new connections use them")
        return True


async def _reload_loop(context: ReloadingContext, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        context.reload_if_changed()


class Serving:
    """The verbs' server as :func:`decide` says, and the probes' server on their own port."""

    def __init__(self, config: settings.ExtenderSettings, verbs_app: Any, probe_app: Any) -> None:
        import uvicorn

        self.listener = decide(config)
        self.reloading: ReloadingContext | None = None
        self._reload_seconds = config.tls_reload_seconds
        level = config.log_level.lower()
        factory = None
        if self.listener.tls is not None:
            reloading = self.reloading = ReloadingContext(self.listener.tls)
            factory = lambda *_: reloading.listening  # noqa: E731
        self.servers = [
            uvicorn.Server(
                uvicorn.Config(
                    verbs_app,
                    host=self.listener.host,
                    port=self.listener.port,
                    log_level=level,
                    access_log=False,
                    ssl_context_factory=factory,
                )
            )
        ]
        if config.probe_port:
            probes = uvicorn.Config(
                probe_app,
                host=config.probe_host,
                port=config.probe_port,
                log_level=level,
                access_log=False,
                lifespan="off",
            )
            self.servers.append(uvicorn.Server(probes))

    async def run(self) -> None:
        """Serve until :meth:`stop` (or a signal, in the main thread)."""
        if self.listener.warning:
            log.warning(self.listener.warning)
        reload_task = (
            asyncio.create_task(_reload_loop(self.reloading, self._reload_seconds))
            if self.reloading is not None
            else None
        )
        try:
            await asyncio.gather(*(server.serve() for server in self.servers))
        finally:
            if reload_task is not None:
                reload_task.cancel()

    def stop(self) -> None:
        for server in self.servers:
            server.should_exit = True
