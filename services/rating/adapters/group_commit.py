"""Group commit: the evaluations of concurrent Nameko workers written in one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import eventlet
import eventlet.event

from services.common.errors import Conflict
from services.common.store import Collection, Doc


class GroupCommit:
    """Writes the evaluations of concurrent workers in one transaction (one fsync).

    The first worker to arrive yields once so that the others already handed a message can
    queue theirs, then inserts the batch with ``insert_many`` and wakes each worker with its
    own stored document. If the batch is refused (one duplicate rolls the whole SQLite batch
    back), each document is written alone so every worker gets its own answer. A worker is
    answered only after its document is durable.
    """

    def __init__(self, collection: Collection) -> None:
        self.collection = collection
        self.pending: list[tuple[Mapping[str, Any], eventlet.event.Event]] = []
        self.leader = False
        self.flushed = eventlet.event.Event()

    def insert(self, doc: Mapping[str, Any]) -> Doc:
        done = eventlet.event.Event()
        self.pending.append((doc, done))
        while not done.ready():
            if self.leader:  # a batch is being written; ours is in it or in the next one
                self.flushed.wait()
                continue
            self.leader = True
            try:
                eventlet.sleep(0)  # let the workers already running queue their documents
                batch, self.pending = self.pending, []
                self._write(batch)
            finally:
                self.leader = False
                flushed, self.flushed = self.flushed, eventlet.event.Event()
                flushed.send(True)
        result: Doc = done.wait()
        return result

    def _write(self, batch: list[tuple[Mapping[str, Any], eventlet.event.Event]]) -> None:
        try:
            stored = self.collection.insert_many([doc for doc, _ in batch])
        except Exception:  # noqa: BLE001  (each one alone, so each worker gets its own answer)
            for doc, done in batch:
                try:
                    done.send(self.collection.insert(doc))
                except Conflict as exc:
                    # Mongo stops an ordered batch at a duplicate: the documents before it
                    # were stored, and are this worker's own if every field matches.
                    found = self.collection.get(doc["id"])
                    if found is not None and all(found.get(k) == v for k, v in doc.items()):
                        done.send(found)
                    else:
                        done.send_exception(exc)
                except Exception as exc:  # noqa: BLE001  (the worker that sent it raises it)
                    done.send_exception(exc)
            return
        for (_, done), doc in zip(batch, stored, strict=True):
            done.send(doc)
