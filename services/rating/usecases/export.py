"""Evaluations exported in an upstream target's coding (GB/T 39046-2020 table 9 and the
provincial interfaces), page by page; records a target cannot code are reported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common.site import prefix
from services.common.validation import load
from services.rating import domain, schemas
from services.rating.store import subtree_range
from services.rating.usecases.base import RatingBase


class Export(RatingBase):
    def export(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """Evaluations in an upstream target's coding, page by page (``after`` a position)."""
        data = load(schemas.ExportSchema, payload)
        after = data["after"]
        profile = domain.EXPORT_PROFILES[data["profile"]]
        query: dict[str, Any] = {
            "day": {"$gte": data["date_from"].isoformat(), "$lte": data["date_to"].isoformat()},
            "_seq": {"$gt": after},
        }
        if (sites := subtree_range(self.site, prefix(self.site))) is not None:
            query["site_code"] = sites
        docs = self.repo.evaluations.find(query, sort=[("_seq", 1)], limit=data["limit"])
        records, unmapped = [], []
        for doc in docs:
            record = domain.export_record(doc, profile, self.settings.zone)
            if record is None:
                unmapped.append(
                    {
                        "id": doc["id"],
                        "channel": doc["channel"],
                        "reason": f"{profile.title} 没有该评价渠道的代码",
                    }
                )
            else:
                records.append(record)
        return {
            "profile": profile.name,
            "title": profile.title,
            "records": records,
            "unmapped": unmapped,
            "next_after": docs[-1]["_seq"] if len(docs) == data["limit"] else None,
        }
