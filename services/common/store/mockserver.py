"""In-process ``mongomock`` servers for the Mongo adapter (``mongomock://`` store URIs, tests
only): stores naming the same server share its data."""

from __future__ import annotations

import threading
from typing import Any, cast

from pymongo import MongoClient

# mongomock "servers" by URI host, each with a lock standing in for the server's
# per-document atomicity (mongomock's find_one_and_update reads, then writes).
_MOCK_SERVERS: dict[str, tuple[Any, threading.RLock]] = {}
_MOCK_SERVERS_LOCK = threading.Lock()


def mock_client(server: str) -> tuple[MongoClient[dict[str, Any]], threading.RLock]:
    """A client of the named in-process server and the lock serialising its operations."""
    import mongomock
    from mongomock.store import ServerStore

    with _MOCK_SERVERS_LOCK:
        if server not in _MOCK_SERVERS:
            backing = ServerStore()  # type: ignore[no-untyped-call, unused-ignore]
            _MOCK_SERVERS[server] = (backing, threading.RLock())
        backing, lock = _MOCK_SERVERS[server]
    client = cast("MongoClient[dict[str, Any]]", mongomock.MongoClient(_store=backing))
    return client, lock
