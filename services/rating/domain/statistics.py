"""Figures over summed rollup counters, how bucket values group, and rankings."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from services.rating.domain.periods import week_key
from services.rating.domain.rollups import LEVEL_FIELDS
from services.rating.domain.scale import ALL, GOOD_LEVELS, SATISFIED_LEVELS, Level


def rate(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def figures(counts: Mapping[str, int]) -> dict[str, Any]:
    """Statistics over summed bucket counters."""
    levels = {level.value: int(counts.get(LEVEL_FIELDS[level], 0)) for level in Level}
    total = sum(levels.values())
    good = sum(levels[lv.value] for lv in GOOD_LEVELS)
    satisfied = sum(levels[lv.value] for lv in SATISFIED_LEVELS)
    bad = total - satisfied

    def get(field: str) -> int:
        return int(counts.get(field, 0))

    return {
        "counts": levels,
        "total": total,
        "good_rate": rate(good, total),
        "satisfaction_rate": rate(satisfied, total),
        "bad": bad,
        "excluded": get("excluded"),
        "held": get("held"),
        "cases": get("cases"),
        "cases_closed": get("cases_closed"),
        "cases_closed_on_time": get("cases_closed_on_time"),
        "closed_on_time_rate": rate(get("cases_closed_on_time"), get("cases_closed")),
        "real_name_bad": get("rn_bad"),
        "callback_rate": rate(get("rn_called_back"), get("rn_bad")),
        "rectification_rate": rate(get("rn_rectified"), get("rn_bad")),
    }


def add_counts(into: dict[str, int], counts: Mapping[str, Any]) -> None:
    for field, value in counts.items():
        if value:
            into[field] = into.get(field, 0) + int(value)


def group_key(bucket: Mapping[str, Any], value: str, group_by: str | None) -> str:
    """The group a bucket value falls in; day and week need day buckets."""
    if group_by is None:
        return ALL
    period = str(bucket["period"])
    if group_by == "day":
        return period
    if group_by == "week":
        return week_key(date.fromisoformat(period))
    if group_by == "month":
        return period[:7]
    if group_by == "site":
        return str(bucket["site_code"])
    if group_by == "window":
        return f"{bucket['site_code']}:{value}"  # window numbers repeat from site to site
    return value


def rank(groups: Iterable[tuple[str, Mapping[str, Any]]], minimum: int) -> list[dict[str, Any]]:
    """Best first: satisfaction rate, then good rate, then volume; ties share a rank."""
    rows = [{"key": key, **fig} for key, fig in groups if fig["total"] >= minimum]
    rows.sort(
        key=lambda r: (
            -(r["satisfaction_rate"] or 0),
            -(r["good_rate"] or 0),
            -r["total"],
            r["key"],
        )
    )
    ranked: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        same = ranked and (row["satisfaction_rate"], row["good_rate"], row["total"]) == (
            ranked[-1]["satisfaction_rate"],
            ranked[-1]["good_rate"],
            ranked[-1]["total"],
        )
        ranked.append({**row, "rank": ranked[-1]["rank"] if same else i + 1})
    return ranked
