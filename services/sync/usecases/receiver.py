"""The upstream's end: verify a child's signed messages, check the subtree, apply its
records durably through the local services, then acknowledge; serve the catalog and the
reconciliation counts (docs/architecture.md, "Replication")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import Schema

from services.common import validation
from services.common.errors import Conflict, Forbidden, InvalidInput, NotFound, UpstreamUnavailable
from services.common.site import within_subtree
from services.sync import domain
from services.sync.domain import FeedRef
from services.sync.ports import LocalUnavailable, RemoteError
from services.sync.schemas import (
    BatchSchema,
    CatalogPage,
    KeyProbeSchema,
    OutcomesRequestSchema,
    ReconcileSchema,
)
from services.sync.usecases.base import RECORD_ERRORS, SyncBase, log

RECORD_REFUSALS = (InvalidInput, Conflict, RemoteError)


class Receiver(SyncBase):
    def _refuse(self, reason: str, message: str, child: object) -> Forbidden:
        self.metrics.refused.labels(**self.metrics.site, reason=reason).inc()
        log.warning("sync refused a batch from %s (%s): %s", child, reason, message)
        return Forbidden(message, {"batch": [message]})

    def _parsed(self, schema: type[Schema], raw: Any, what: str) -> dict[str, Any]:
        """``raw`` loaded by ``schema``; a malformed message is counted before its refusal
        is raised."""
        try:
            return validation.load(schema, raw, what)
        except InvalidInput:
            self.metrics.refused.labels(**self.metrics.site, reason="malformed").inc()
            raise

    def _verify_child(self, raw: Mapping[str, Any], child: str) -> None:
        keys = self.settings.children.get(child)
        if not keys:
            raise self._refuse("unknown_child", f"站点 {child} 不是本站点登记的下级站点", child)
        if not domain.verify(raw, keys):
            raise self._refuse("bad_signature", "签名无效：不是用该下级站点的密钥签名的", child)

    def _authenticate(self, raw: Mapping[str, Any], child: str, service: str, feed: str) -> FeedRef:
        self._verify_child(raw, child)
        ref = FeedRef(service, feed)
        if ref not in self.settings.accept:
            raise self._refuse("feed_not_accepted", f"本站点不接收数据源 {ref.key}", child)
        return ref

    def verify_key(self, raw: Any) -> dict[str, Any]:
        """A child's key check: is its probe signed with a key registered for it here?"""
        probe = self._parsed(KeyProbeSchema, raw, "probe")
        child = probe["child"]
        if probe["upstream"] != self.code:
            raise Conflict(
                f"站点 {child} 把 {probe['upstream']} 当作上级，应答的却是站点 {self.code}",
                {"UPSTREAM_AMQP_URI": ["指向了错误的站点"]},
            )
        keys = self.settings.children.get(child)
        if not keys:
            raise self._refuse(
                "unknown_child",
                f"站点 {child} 未在上级站点 {self.code} 登记（上级 SYNC.children 中没有它的密钥）",
                child,
            )
        index = domain.matching_key(raw, keys)
        if index is None:
            raise self._refuse(
                "bad_signature",
                f"站点 {child} 的 SYNC.key 与上级站点 {self.code} 为它登记的密钥"
                f"（SYNC.children.{child}）不一致",
                child,
            )
        return {
            "ok": True,
            "site_code": self.code,
            "child": child,
            "key": "current" if index == len(keys) - 1 else "previous",
            "keys_registered": len(keys),
        }

    def ingest(self, raw: Any) -> dict[str, Any]:
        """A child's batch: verified, applied durably, acknowledged with the high-water
        mark held here for the child's feed."""
        batch = self._parsed(BatchSchema, raw, "batch")
        child = batch["child"]
        ref = self._authenticate(raw, child, batch["service"], batch["feed"])
        valid: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        foreign: set[str] = set()
        for record in batch["records"]:
            problem = domain.record_problem(record, self.settings.max_record_bytes)
            if problem is None and (
                personal := domain.personal_keys(record, self.settings.mask_keys)
            ):
                problem = f"含有个人信息字段 {', '.join(personal)}"
            if problem is not None:
                rejected.append(domain.rejection(record, problem))
                continue
            sites = {record["site_code"], domain.owner_of(record)}
            if outside := {site for site in sites if not within_subtree(site, child)}:
                foreign.update(outside)
            elif (problem := domain.ownership_problem(record)) is not None:
                rejected.append(domain.rejection(record, problem))
            else:
                valid.append(record)
        if foreign:
            raise self._refuse(
                "foreign_origin",
                f"批次含有不属于站点 {child} 辖区的记录（来源 {', '.join(sorted(foreign))}）",
                child,
            )
        stored, applied = self._apply(ref, valid, rejected) if valid else ([], 0)
        self.repo.record_ledger(ref.key, stored, child)
        if batch["resend"]:
            mark = self.repo.high_water(child, ref.key)
        else:
            mark = self.repo.acknowledge(
                child, ref.key, batch["from_seq"], batch["to_seq"], batch["incarnation"]
            )
        self.metrics.records.labels(**self.metrics.site, direction="in", feed=ref.key).inc(
            len(stored)
        )
        if rejected:
            self.metrics.rejected.labels(**self.metrics.site, feed=ref.key).inc(len(rejected))
        return {
            "high_water": mark,
            "received": len(batch["records"]),
            "stored": len(stored),
            "applied": applied,
            "rejected": rejected,
        }

    def _apply(
        self, ref: FeedRef, records: list[dict[str, Any]], rejected: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """Upsert through the local service; on a record it refuses, find it one by one.
        Returns the records stored (or already held) and how many changed anything."""
        try:
            return records, self._apply_call(ref, records)
        except RECORD_REFUSALS as exc:
            if not _record_error(exc):
                raise
        stored, applied = [], 0
        for record in records:
            try:
                applied += self._apply_call(ref, [record])
                stored.append(record)
            except RECORD_REFUSALS as exc:
                if not _record_error(exc):
                    raise
                rejected.append(domain.rejection(record, str(exc)[:300]))
        return stored, applied

    def _apply_call(self, ref: FeedRef, records: list[dict[str, Any]]) -> int:
        try:
            answer = self.local.call(ref.service, "apply_replicated", ref.feed, records)
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(f"上级站点：{exc.message}") from None
        except NotFound:
            raise Conflict(
                f"上级站点的 {ref.service} 服务不接收 {ref.feed}",
                {"feed": [f"{ref.key} 未列入 replicated_feeds"]},
            ) from None
        return int(answer.get("applied", 0))

    def catalog_changes(self, since: Any = 0, limit: Any = 500) -> dict[str, Any]:
        """A page of this site's catalog feed after ``since``, for a child."""
        args = validation.load(CatalogPage(), {"since": since, "limit": limit})
        try:
            page: dict[str, Any] = self.local.call(
                self.settings.catalog_service, "catalog_changes", args["since"], args["limit"]
            )
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(f"上级站点：{exc.message}") from None
        return page

    def proxy_outcomes(self, raw: Any) -> dict[str, Any]:
        """A page of this site's ``proxy_outcomes`` feed for a child: read past up to
        ``limit`` records, those of the child's subtree returned (the others are for its
        siblings); ``last_seq`` is where the child goes on from."""
        request = self._parsed(OutcomesRequestSchema, raw, "request")
        child = request["child"]
        self._verify_child(raw, child)
        try:
            page: dict[str, Any] = self.local.call(
                "matters", "feed", "proxy_outcomes", request["since"], request["limit"]
            )
        except LocalUnavailable as exc:
            raise UpstreamUnavailable(f"上级站点：{exc.message}") from None
        page["items"] = [
            item
            for item in page["items"]
            if isinstance(item.get("proxy_site"), str) and within_subtree(item["proxy_site"], child)
        ]
        page["more"] = int(page["last_seq"]) < int(page["high_water"])
        return page

    def reconcile_counts(self, raw: Any) -> dict[str, Any]:
        """The records held here per origin per day, for a child's counts."""
        request = validation.load(ReconcileSchema, raw, "request")
        child = request["child"]
        ref = self._authenticate(raw, child, request["service"], request["feed"])
        counts: dict[str, dict[str, int]] = {}
        digests: dict[str, dict[str, str]] = {}
        for origin, days in request["counts"].items():
            if not within_subtree(origin, child):
                raise self._refuse(
                    "foreign_origin", f"站点 {child} 无权查询 {origin} 的数据", child
                )
            for day in days:
                pairs = self.repo.ledger_versions(ref.key, origin, day)
                counts.setdefault(origin, {})[day] = len(pairs)
                digests.setdefault(origin, {})[day] = domain.digest(pairs)
        return {
            "counts": counts,
            "digests": digests,
            "high_water": self.repo.high_water(child, ref.key),
        }


def _record_error(exc: BaseException) -> bool:
    if isinstance(exc, RemoteError):
        return exc.exc_type in RECORD_ERRORS
    return True
