"""Downward: the child applies the upstream's catalog changes after its checkpoint
(同源发布) through its own catalog service, and the outcomes of its subtree's 代办
applications handled above through its matters (``apply_proxy_outcomes``). A record the
local service refuses (``InvalidInput`` / ``Conflict``) is parked with the reason and the
rest of the page flows; a service that does not answer is retried (the checkpoint stays)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.common.errors import Conflict, InvalidInput, UpstreamUnavailable
from services.common.feeds import rolled_back
from services.sync import domain
from services.sync.ports import LocalUnavailable, UpstreamSession
from services.sync.usecases.base import DOWN, OUTCOMES_FEED, PROXY_DOWN, SyncBase, log

# What the catalog service raises for records it will not take: parked, not retried.
REFUSALS = (InvalidInput, Conflict)
# ``docs[3].matter.handled_at`` → position 3, rest ``.matter.handled_at``
_DOC_FIELD = re.compile(r"docs\[(\d+)\](.*)")


class CatalogPull(SyncBase):
    def pull_catalog(self, up: UpstreamSession) -> dict[str, Any]:
        """Apply the upstream's catalog changes after our checkpoint."""
        result = self._pull_down(
            DOWN, self.catalog_key, self.catalog_feed, up.catalog_changes, "apply_catalog"
        )
        if result["parked"]:
            self._gauge_catalog_parked()
        return result

    def pull_outcomes(self, up: UpstreamSession) -> dict[str, Any]:
        """Apply the outcomes of this subtree's 代办 applications handled above (the
        upstream's ``proxy_outcomes`` for this site, asked for with a signed request)."""

        def fetch(since: int, limit: int) -> dict[str, Any]:
            request = {"schema": domain.SCHEMA, "child": self.code, "since": since}
            request.update(limit=limit, sent_at=self._now_iso())
            return up.proxy_outcomes(domain.sign(request, self._key()))

        result = self._pull_down(
            PROXY_DOWN, PROXY_DOWN, OUTCOMES_FEED, fetch, "apply_proxy_outcomes", "matters"
        )
        if result["parked"]:
            self.metrics.parked.labels(**self.metrics.site, feed=OUTCOMES_FEED).set(
                self.repo.parked_count(OUTCOMES_FEED)
            )
        return result

    def _pull_down(
        self,
        name: str,
        checkpoint: str,
        feed: str,
        fetch: Callable[[int, int], dict[str, Any]],
        method: str,
        service: str | None = None,
    ) -> dict[str, Any]:
        """Apply the pages ``fetch`` gives after ``checkpoint`` with the local
        ``service.method``; records it refuses are parked under ``feed`` and the rest flows.
        A page may hold fewer records than it read past (the upstream filters it): its
        ``more`` says whether to go on."""
        size = self.settings.batch_size
        applied = parked = 0
        while True:
            position = self.repo.checkpoint_doc(checkpoint)
            since = position["seq"]
            page = fetch(since, size)
            items = page["items"]
            position["incarnation"] = page.get("incarnation") or position["incarnation"]
            if since and rolled_back(
                page, since, self.repo.checkpoint_doc(checkpoint)["incarnation"]
            ):
                # The upstream's store was restored: apply it again from 0 (by version).
                self.repo.set_checkpoint(checkpoint, 0, position)
                continue
            if items:
                docs = [{k: v for k, v in doc.items() if k != "_seq"} for doc in items]
                refused = self._apply_down(docs, method, service)
                for i, reason in sorted(refused.items()):
                    self.repo.park(feed, docs[i], reason, items[i].get("_seq"))
                    log.warning(
                        "sync parked a record of %s at seq %s: %s",
                        feed,
                        items[i].get("_seq"),
                        reason,
                    )
                applied += len(items) - len(refused)
                parked += len(refused)
                self.metrics.records.labels(**self.metrics.site, direction=DOWN, feed=feed).inc(
                    len(items) - len(refused)
                )
            if int(page["last_seq"]) != since:
                self.repo.set_checkpoint(checkpoint, int(page["last_seq"]), position)
            self.repo.succeeded(name, {"upstream_high_water": int(page["high_water"])})
            more = page.get("more", len(items) >= size)
            if not more or self.state.stopping:
                break
        return {
            "applied": applied,
            "parked": parked,
            "checkpoint": self.repo.checkpoint(checkpoint),
        }

    def _apply_down(
        self, docs: Sequence[Mapping[str, Any]], method: str, service: str | None = None
    ) -> dict[int, str]:
        """Apply ``docs`` with the local ``service.method`` (the catalog service's
        ``apply_catalog`` unless told): one call while it accepts them.
        Returns the positions of the records it refused, with the reason; those it names
        (``docs[i]…``) are left out and the rest sent again, and a refusal naming none is
        settled record by record. Anything else (the service does not answer, or refuses
        the whole catalog) is raised: the page is tried again later."""
        service = service or self.settings.catalog_service
        pending = list(range(len(docs)))
        refused: dict[int, str] = {}
        while pending:
            try:
                self.local.call(service, method, [docs[i] for i in pending])
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
                        self.local.call(service, method, [docs[i]])
                    except REFUSALS as one:
                        refused[i] = _named_records(one, service).get(0) or _refusal(one, service)
                break
        return refused

    def _retry_catalog(self) -> dict[str, int]:
        """Apply the parked catalog records again (e.g. after the catalog service was
        upgraded); those it takes now leave the parked list."""
        try:
            return self._retry_down(self.catalog_feed, "apply_catalog")
        finally:
            self._gauge_catalog_parked()

    def _retry_outcomes(self) -> dict[str, int]:
        """The parked 代办 outcomes again (e.g. once the application they name arrived)."""
        try:
            return self._retry_down(OUTCOMES_FEED, "apply_proxy_outcomes", "matters")
        finally:
            self.metrics.parked.labels(**self.metrics.site, feed=OUTCOMES_FEED).set(
                self.repo.parked_count(OUTCOMES_FEED)
            )

    def _retry_down(self, feed: str, method: str, service: str | None = None) -> dict[str, int]:
        resolved = still = after = 0
        try:
            while docs := self.repo.parked_records([feed], self.settings.batch_size, after):
                after = docs[-1]["_seq"]
                refused = self._apply_down([doc["record"] for doc in docs], method, service)
                for i, doc in enumerate(docs):
                    if i in refused:
                        still += 1
                    else:
                        self.repo.unpark(doc["id"])
                        resolved += 1
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(exc.message) from None
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
