"""A real TCP proxy standing in for the WAN link between a site and its upstream broker
(not a test double: every byte goes through to the real RabbitMQ). Used by
tests/system/test_sync_network.py (the village's link to the town) and
tests/service/test_sync_service.py (an outage test). No tests in this module.
"""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Iterable
from contextlib import suppress


class LinkProxy:
    """A TCP proxy standing in for the WAN link between a site and its upstream broker:
    ``cut()`` drops every connection and refuses new ones, ``restore()`` listens again on
    the same port. While cut, the port stays bound (not listening), so connections are
    refused and no other process can take the port meanwhile. Plain threads and sockets
    (green ones under eventlet's monkey patch)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        # The socket holding the port (listening while open), closed by ``close()`` or, at
        # the latest, when the proxy is collected.
        self._holder = [self._bind(0)]
        weakref.finalize(self, _close_all, self._holder)
        self.port: int = self._holder[0].getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._generation = 0
        self.connections = 0

    @staticmethod
    def _bind(port: int) -> socket.socket:
        sock = socket.socket()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            raise
        return sock

    @property
    def is_open(self) -> bool:
        return self._generation % 2 == 1

    def restore(self) -> LinkProxy:
        with self._lock:
            if self.is_open:
                return self
            self._generation += 1
            generation = self._generation
            server = self._holder[0]
            server.listen(64)
            server.settimeout(0.1)
        threading.Thread(target=self._accept, args=(server, generation), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            if not self.is_open:
                return
            self._generation += 1
            doomed, self._sockets = self._sockets, set()
            # A socket cannot stop listening: shut it down (which also wakes its accept) and
            # hold the port with a new, bound but not listening, one.
            _close_all(self._holder)
            self._holder[0] = self._bind(self.port)
        _close_all(doomed)

    def close(self) -> None:
        """Cut the link for good and free the port."""
        self.cut()
        _close_all(self._holder)

    def _accept(self, server: socket.socket, generation: int) -> None:
        try:
            while self._generation == generation:
                try:
                    client, _ = server.accept()
                except TimeoutError:
                    continue
                except OSError:  # closed by cut()
                    return
                try:
                    upstream = socket.create_connection(self.target, timeout=5)
                except OSError:
                    client.close()
                    continue
                with self._lock:
                    if self._generation != generation:
                        client.close()
                        upstream.close()
                        return
                    self._sockets |= {client, upstream}
                    self.connections += 1
                for src, dst in ((client, upstream), (upstream, client)):
                    src.settimeout(0.2)
                    threading.Thread(
                        target=self._pipe, args=(src, dst, generation), daemon=True
                    ).start()
        finally:
            server.close()

    def _pipe(self, src: socket.socket, dst: socket.socket, generation: int) -> None:
        try:
            while self._generation == generation:
                try:
                    data = src.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close_all((src, dst))


def _close_all(sockets: Iterable[socket.socket]) -> None:
    for sock in sockets:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with suppress(OSError):
            sock.close()
