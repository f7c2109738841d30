"""A deadline on a whole HTTP exchange: connection, headers and body, however slowly the server drips.

Socket timeouts bound each wait for data, not their sum: a server that sends one header line a
second never reaches a 30 s read timeout. A :class:`Deadline` watches the sockets that
:func:`deadline_session` opens (redirects and proxies included) and shuts them down when its time
is up, which ends any read in progress there; ``expired`` then says why the exchange failed.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_WATCHING = threading.local()  # the Deadline of the exchange that this thread runs, if any


class Deadline:
    """``with Deadline(seconds):`` shuts down, ``seconds`` after entering, the sockets opened in the
    block by :func:`deadline_session`'s sessions in this thread."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._over = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> None:
        _WATCHING.deadline = self
        self._timer.start()

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with self._lock:  # an expiry in progress ends before the sockets may be closed and reused
            self._over = True
        _WATCHING.deadline = None

    def watch(self, sock: socket.socket) -> None:
        """Shut ``sock`` down when the time is up (at once if it is up already)."""
        with self._lock:
            if self._over:
                return
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            if self._over:
                return
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # closed already
        pass


def _watched(connection: type[HTTPConnection]) -> type[HTTPConnection]:
    class Watched(connection):
        def _new_conn(self) -> socket.socket:  # the TCP socket, before any TLS handshake on it
            sock = super()._new_conn()
            deadline = getattr(_WATCHING, "deadline", None)
            if deadline is not None:
                deadline.watch(sock)
            return sock

    Watched.__name__ = f"Watched{connection.__name__}"
    return Watched


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _watched(HTTPConnection)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _watched(HTTPSConnection)


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connection pools (direct or through a proxy) report their sockets."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS proxies have pools of their own: not watched
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def deadline_session() -> requests.Session:
    """A requests session whose sockets the current thread's :class:`Deadline` watches."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
