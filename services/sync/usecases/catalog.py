"""The catalog, downward: the child applies the upstream's catalog changes after its
checkpoint (同源发布) through its own catalog service. A record the local catalog service
refuses (``InvalidInput`` / ``Conflict``) is parked with the reason and the rest of the page
flows; a catalog service that does not answer is retried (the checkpoint stays)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from services.common.errors import Conflict, InvalidInput, UpstreamUnavailable
from services.common.feeds import rolled_back
from services.sync.ports import LocalUnavailable, UpstreamSession
from services.sync.usecases.base import DOWN, SyncBase, log

# What the catalog service raises for records it will not take: parked, not retried.
REFUSALS = (InvalidInput, Conflict)
# ``docs[3].matter.handled_at`` → position 3, rest ``.matter.handled_at``
_DOC_FIELD = re.compile(r"docs\[(\d+)\](.*)")


class CatalogPull(SyncBase):
    def pull_catalog(self, up: UpstreamSession) -> dict[str, Any]:
        """Apply the upstream's catalog changes after our checkpoint."""
        checkpoint = self.catalog_key
        size = self.settings.batch_size
        applied = parked = 0
        while True:
            position = self.repo.checkpoint_doc(checkpoint)
            since = position["seq"]
            page = up.catalog_changes(since, size)
            items = page["items"]
            position["incarnation"] = page.get("incarnation") or position["incarnation"]
            if since and rolled_back(
                page, since, self.repo.checkpoint_doc(checkpoint)["incarnation"]
            ):
                # The upstream's catalog was restored: apply it again from 0 (by version).
                self.repo.set_checkpoint(checkpoint, 0, position)
                continue
            if items:
                docs = [{k: v for k, v in doc.items() if k != "_seq"} for doc in items]
                refused = self._apply_catalog(docs)
                for i, reason in sorted(refused.items()):
                    self.repo.park(self.catalog_feed, docs[i], reason, items[i].get("_seq"))
                    log.warning(
                        "sync parked a record of %s at seq %s: %s",
                        self.catalog_feed,
                        items[i].get("_seq"),
                        reason,
                    )
                self.repo.set_checkpoint(checkpoint, int(page["last_seq"]), position)
                applied += len(items) - len(refused)
                parked += len(refused)
                self.metrics.records.labels(
                    **self.metrics.site, direction=DOWN, feed=self.catalog_feed
                ).inc(len(items) - len(refused))
            self.repo.succeeded(DOWN, {"upstream_high_water": int(page["high_water"])})
            if len(items) < size or self.state.stopping:
                break
        if parked:
            self._gauge_catalog_parked()
        return {
            "applied": applied,
            "parked": parked,
            "checkpoint": self.repo.checkpoint(checkpoint),
        }

    def _apply_catalog(self, docs: Sequence[Mapping[str, Any]]) -> dict[int, str]:
        """Apply ``docs`` with the local catalog service: one call while it accepts them.
        Returns the positions of the records it refused, with the reason; those it names
        (``docs[i]…``) are left out and the rest sent again, and a refusal naming none is
        settled record by record. Anything else (the service does not answer, or refuses
        the whole catalog) is raised: the page is tried again later."""
        service = self.settings.catalog_service
        pending = list(range(len(docs)))
        refused: dict[int, str] = {}
        while pending:
            try:
                self.local.call(service, "apply_catalog", [docs[i] for i in pending])
                break
            except REFUSALS as exc:
                named = {
                    pending[at]: reason
                    for at, reason in _named_records(exc, service).items()
                    if at < len(pending)
                }
                if not named and len(pending) == 1:
                    named = {pending[0]: _refusal(exc, service)}
                if named:
                    refused.update(named)
                    pending = [i for i in pending if i not in named]
                    continue
                for i in pending:  # the refusal names no record: one by one
                    try:
                        self.local.call(service, "apply_catalog", [docs[i]])
                    except REFUSALS as one:
                        refused[i] = _named_records(one, service).get(0) or _refusal(one, service)
                break
        return refused

    def _retry_catalog(self) -> dict[str, int]:
        """Apply the parked catalog records again (e.g. after the catalog service was
        upgraded); those it takes now leave the parked list."""
        feed = self.catalog_feed
        resolved = still = after = 0
        try:
            while docs := self.repo.parked_records([feed], self.settings.batch_size, after):
                after = docs[-1]["_seq"]
                refused = self._apply_catalog([doc["record"] for doc in docs])
                for i, doc in enumerate(docs):
                    if i in refused:
                        still += 1
                    else:
                        self.repo.unpark(doc["id"])
                        resolved += 1
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(exc.message) from None
        finally:
            self._gauge_catalog_parked()
        return {"resolved": resolved, "still_parked": still}

    def _gauge_catalog_parked(self) -> int:
        count = self.repo.parked_count(self.catalog_feed)
        self.metrics.parked.labels(**self.metrics.site, feed=self.catalog_feed).set(count)
        return count


def _named_records(exc: InvalidInput | Conflict, service: str) -> dict[int, str]:
    """The records of the batch a refusal names (``docs[i]…`` fields), with the reason."""
    found: dict[int, list[str]] = {}
    for name, rules in exc.fields.items():
        match = _DOC_FIELD.fullmatch(name)
        if match is not None:
            where = match.group(2).lstrip(".") or "记录"
            found.setdefault(int(match.group(1)), []).append(f"{where}：{'，'.join(rules)}")
    return {i: f"本站 {service} 拒收：{'；'.join(parts)}" for i, parts in found.items()}


def _refusal(exc: InvalidInput | Conflict, service: str) -> str:
    return f"本站 {service} 拒收：{exc}".splitlines()[0]
