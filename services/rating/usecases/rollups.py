"""Statistics from the rollups: records replicated from child sites, folding, ``stats``
over the site's subtree, monthly rankings and the public report (公开为常态)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from services.common.errors import Forbidden, InvalidInput, NotFound
from services.common.site import prefix, within_subtree
from services.common.store.port import OWNER_FIELDS
from services.common.validation import load
from services.rating import domain, schemas
from services.rating.store import REPLICATED, subtree_range
from services.rating.usecases.base import RatingBase


class Rollups(RatingBase):
    def store_replicated(self, name: str, docs: list[dict[str, Any]]) -> int:
        """Records of a child site (``apply_replicated``), counted into the rollups."""
        if name not in REPLICATED:
            raise NotFound(f"本服务不接收 {name} 的复制数据", {"name": [name]})
        # A record the rollups cannot count (e.g. a level this version does not know) is
        # refused before anything is stored: once stored, the folder would stop at it for
        # good (stats failing, the fold loop killing the container). sync parks it at the
        # child and the rest of the batch is stored.
        contribution = domain.CONTRIBUTIONS[name]
        for doc in docs:
            try:
                date.fromisoformat(doc["day"])
                domain.expand(contribution(doc))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                doc_id = doc.get("id") if isinstance(doc, Mapping) else None
                raise InvalidInput.field(
                    name, f"记录 {doc_id} 无法计入统计：{type(exc).__name__}: {exc}"
                ) from None
        # The owner check is atomic with the upsert (docs/architecture.md, "Replication").
        applied = self.repo.c[name].upsert_versioned_many(docs, owner=OWNER_FIELDS)
        self.repo.fold(name)
        return applied

    def fold(self) -> int:
        """Fold what the feeds hold beyond the rollups' checkpoints; how many records."""
        self.dirty = False
        return self.repo.fold()

    def _root(self, site_code: str | None) -> str:
        root = site_code or self.site
        if not within_subtree(root, self.site):
            raise Forbidden(f"站点 {root} 不在本站 {self.site} 的辖区内", {"site_code": [root]})
        return root

    def stats(
        self, filters: Mapping[str, Any] | None, group_by: str | None = None
    ) -> dict[str, Any]:
        data = load(schemas.StatsFilterSchema, {} if filters is None else filters)
        group_by = load(schemas.GroupByArgs, {"group_by": group_by})["group_by"]
        root = self._root(data.get("site_code"))
        today = domain.local_day(self.clock(), self.settings.zone)
        date_from = data.get("date_from") or today.replace(day=1)
        date_to = data.get("date_to") or today
        return self._stats(root, date_from, date_to, data, group_by)

    def _stats(
        self,
        root: str,
        date_from: date,
        date_to: date,
        data: Mapping[str, Any],
        group_by: str | None,
    ) -> dict[str, Any]:
        self.fold()
        filters = {d: str(data[d]) for d in domain.DIMENSIONS if data.get(d) is not None}
        grouped = (group_by,) if group_by in domain.DIMENSIONS and group_by not in filters else ()
        dims = (*filters, *grouped)
        if len(dims) > 2:  # no bucket holds three dimensions, and a scan is not bounded
            raise InvalidInput.field(
                "group_by" if grouped else "filters",
                f"最多同时按两个维度筛选或分组，收到 {', '.join(dims)}",
            )
        dim = domain.pair_dimension(dims) if dims else "all"
        sites = subtree_range(root, prefix(root))
        by_day = group_by in ("day", "week")
        today = domain.local_day(self.clock(), self.settings.zone)
        months, day_ranges, minus = domain.plan_trimmed(date_from, date_to, by_day, today)
        queries: list[tuple[int, dict[str, Any]]] = []
        if months:
            queries.append((1, {"dim": dim, "grain": "month", "period": {"$in": months}}))
        for sign, ranges in ((1, day_ranges), (-1, minus)):
            for first, last in ranges:
                span = {"$gte": first, "$lte": last}
                queries.append((sign, {"dim": dim, "grain": "day", "period": span}))
        groups: dict[str, dict[str, int]] = {}
        total: dict[str, int] = {}
        for sign, query in queries:
            if sites is not None:
                query["site_code"] = sites
            for bucket in self.repo.buckets(query):
                values = bucket.get("values") or {}
                if dims == (*filters,) and len(dims) == 1:  # one filter: its value alone
                    wanted = filters[dims[0]]
                    values = {wanted: values[wanted]} if wanted in values else {}
                for value, counts in values.items():
                    parts = domain.split_value(dim, value)
                    if any(parts.get(d) != v for d, v in filters.items()):
                        continue
                    signed = counts if sign > 0 else {f: -int(n) for f, n in counts.items()}
                    if group_by is not None:
                        own = parts.get(group_by, value)  # the grouped dimension's own value
                        key = domain.group_key(bucket, own, group_by)
                        domain.add_counts(groups.setdefault(key, {}), signed)
                    domain.add_counts(total, signed)
        # a group seen only on the days a trimmed month subtracts nets to nothing
        groups = {k: v for k, v in groups.items() if any(v.values())}
        return {
            "site_code": root,
            "date_from": date_from.isoformat(),
            "date_to": date_to.isoformat(),
            "filter": {d: data[d] for d in filters},
            "group_by": group_by,
            "total": domain.figures(total),
            "groups": [{"key": k, **domain.figures(v)} for k, v in sorted(groups.items())]
            if group_by
            else [],
        }

    def rankings(self, month: str, dimension: str = "window", limit: int = 20) -> dict[str, Any]:
        """Monthly ranking of windows or staff (for assessment and awards)."""
        args = {"month": month, "dimension": dimension, "limit": limit}
        load(schemas.RankingsSchema, args)
        first, last = domain.parse_period(month)
        result = self._stats(self.site, first, last, {}, dimension)
        minimum = self.settings.ranking_min_evaluations
        ranked = domain.rank(((g["key"], g) for g in result["groups"]), minimum)
        return {
            "month": month,
            "dimension": dimension,
            "site_code": self.site,
            "min_evaluations": minimum,
            "rows": ranked[:limit],
        }

    def public_report(self, period: str) -> dict[str, Any]:
        """公开为常态: figures for publication; no staff, no rater, no record ids."""
        period = load(schemas.PeriodArgs, {"period": period})["period"]
        first, last = domain.parse_period(period)
        total = self._stats(self.site, first, last, {}, None)["total"]
        by = {
            dim: self._stats(self.site, first, last, {}, dim)["groups"]
            for dim in ("department", "matter", "channel", "site")
        }
        windows = domain.rank(
            ((g["key"], g) for g in self._stats(self.site, first, last, {}, "window")["groups"]),
            self.settings.ranking_min_evaluations,
        )
        return {
            "site_code": self.site,
            "period": period,
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "total": total,
            "by_department": by["department"],
            "by_matter": by["matter"],
            "by_channel": by["channel"],
            "by_site": by["site"],
            "windows": windows,
            "note": "差评均按“谁办理、谁负责”回访整改；不予采纳及申诉成立的评价保留但不计入统计。",
        }
