"""Long-lived HTTP bodies (server-sent events, long polls) under eventlet's WSGI server:
each chunk goes out at once, a client that stops reading is dropped after
``idle_seconds``, and the slot the body holds is given back exactly once when the server
closes it (at its end, when the client went away, or when it never started)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from werkzeug.wrappers import Request

_CHUNK = "eventlet.minimum_write_chunk_size"


class LiveBody:
    def __init__(self, body: Iterator[bytes], release: Callable[[], None]) -> None:
        self.body, self.release, self.open = body, release, True

    def __iter__(self) -> Iterator[bytes]:
        return self.body

    def close(self) -> None:
        if self.open:
            self.open = False
            self.release()
        close = getattr(self.body, "close", None)
        if close is not None:
            close()


def live_body(
    request: Request, body: Iterator[bytes], release: Callable[[], None], idle_seconds: float
) -> LiveBody:
    request.environ[_CHUNK] = 0  # send each event at once, not in 4 KB batches
    # eventlet.wsgi keeps the client socket in the input object: a timeout on it makes a
    # write that blocks (a client that stopped reading) fail, which closes the body.
    sock = getattr(request.environ.get("eventlet.input"), "_sock", None)
    if sock is not None and hasattr(sock, "settimeout"):
        sock.settimeout(idle_seconds)
    return LiveBody(body, release)
