"""A TCP proxy between a component and the stand-in API server, to make the network fail.

The stand-in keeps its objects in memory, so killing it would lose the cluster; a real
kube-apiserver keeps nothing (etcd does) and comes back with the same objects and versions.
Killing the *proxy* is that fault as the component sees it: every connection drops, new ones are
refused, and when it listens again the same objects are there::

    proxy = Proxy(upstream_port).start()      # component's kubeconfig -> proxy.url
    proxy.cut()       # watches dropped mid-stream; reconnecting works at once
    proxy.stop()      # API server down: connections dropped, new ones refused
    proxy.start()     # back, same port
    with proxy.frozen():    # nothing flows either way (bytes wait in the proxy) until the end
        ...
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

from e2e.harness import processes


class Proxy:
    def __init__(self, upstream_port: int, *, port: int | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.port = port or processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self.connections = 0

    def start(self) -> Proxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (the API server process died)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self.cut()

    def cut(self) -> None:
        """Drop every open connection, mid-stream; new ones are still accepted."""
        with self._lock:
            doomed, self._sockets = self._sockets, set()
        for sock in doomed:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Nothing is forwarded, on any connection, until the block ends: what the server sent
        meanwhile (a watch's events, its end) reaches the client afterwards, all at once."""
        self._flowing.clear()
        try:
            yield
        finally:
            self._flowing.set()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._track(client)
        self._flowing.wait()
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        self.connections += 1
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self._flowing.wait()
                target.sendall(chunk)
        except OSError:
            pass
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
