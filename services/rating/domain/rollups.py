"""Rollups: what one evaluation or case contributes to the statistics buckets (one per
day and month × site × dimension, single dimensions and pairs of them), and the
arithmetic of folding a newer version in as the difference from what its previous
version contributed. The folding itself (watermarks, marks, compare-and-set) is
``services/rating/rollups.py``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations
from typing import Any

from services.rating.domain.cases import CaseState
from services.rating.domain.records import Contribution
from services.rating.domain.scale import ALL, Level

LEVEL_FIELDS = {level: f"n_{level.value}" for level in Level}
CASE_FIELDS = (
    "cases",
    "cases_closed",
    "cases_closed_on_time",
    "rn_bad",
    "rn_called_back",
    "rn_rectified",
)
COUNT_FIELDS = (*LEVEL_FIELDS.values(), "excluded", "held", *CASE_FIELDS)
_DIM_SOURCES = {
    "window": "window",
    "staff": "staff_id",
    "matter": "matter_code",
    "department": "department",
    "channel": "channel",
}


# A pair bucket's dimension is ``<a>+<b>`` (in ``_DIM_SOURCES`` order), its values
# ``<value a>\x1f<value b>``: two filters, or a filter and a grouping, are read from one
# bucket instead of a scan of the records.
PAIR_JOIN = "+"
VALUE_JOIN = "\x1f"


def pair_dimension(dims: tuple[str, ...]) -> str:
    """The bucket dimension holding these one or two dimensions (in any order)."""
    ordered = [d for d in _DIM_SOURCES if d in dims]
    return PAIR_JOIN.join(ordered)


def split_value(dim: str, value: str) -> dict[str, str]:
    """A bucket value as ``{dimension: value}`` (one entry, or two for a pair bucket)."""
    names = dim.split(PAIR_JOIN)
    if len(names) == 1:
        return {dim: value}
    return dict(zip(names, value.split(VALUE_JOIN, 1), strict=True))


def bucket_id(period: str, site_code: str, dim: str) -> str:
    """A rollup document: one period (a day ``YYYY-MM-DD`` or a month ``YYYY-MM``), one
    site, one dimension; inside, counters per dimension value and field."""
    return f"{period}|{site_code}|{dim}"


def _keys(doc: Mapping[str, Any]) -> list[list[str]]:
    present = [
        (dim, str(doc[field]))
        for dim, field in _DIM_SOURCES.items()
        if doc.get(field) not in (None, "")
    ]
    if any(VALUE_JOIN in value for _, value in present):  # refused as a replicated record
        raise ValueError("a dimension value holds the pair separator")
    pairs = [["all", ALL], *([dim, value] for dim, value in present)]
    for (a, va), (b, vb) in combinations(present, 2):
        pairs.append([f"{a}{PAIR_JOIN}{b}", f"{va}{VALUE_JOIN}{vb}"])
    return pairs


def _compact(doc: Mapping[str, Any], counts: dict[str, int]) -> Contribution:
    """A contribution, compactly: day, site, (dimension, value) pairs, and the counters each
    of those buckets gets (the same for all of them)."""
    return {"d": doc["day"], "s": doc["site_code"], "v": _keys(doc), "n": counts}


def evaluation_contribution(doc: Mapping[str, Any] | None) -> Contribution | None:
    """What one evaluation adds to the rollups (None for nothing)."""
    if doc is None:
        return None
    if doc.get("held"):
        counts = {"held": 1}
    elif doc.get("excluded"):
        counts = {"excluded": 1}
    else:
        counts = {LEVEL_FIELDS[Level(doc["level"])]: 1}
    return _compact(doc, counts)


def case_contribution(doc: Mapping[str, Any] | None) -> Contribution | None:
    if doc is None:
        return None
    closed = doc["state"] == CaseState.CLOSED
    counts = {
        "cases": 1,
        "cases_closed": int(closed),
        "cases_closed_on_time": int(closed and bool(doc.get("on_time"))),
    }
    if doc.get("real_name"):
        counts |= {
            "rn_bad": 1,
            "rn_called_back": int(bool(doc.get("called_back"))),
            "rn_rectified": int(closed),
        }
    return _compact(doc, {k: v for k, v in counts.items() if v})


Contribute = Callable[[Mapping[str, Any] | None], Contribution | None]
CONTRIBUTIONS: dict[str, Contribute] = {
    "evaluations": evaluation_contribution,
    "cases": case_contribution,
}

Cell = tuple[str, str]  # (bucket id, dimension value)


def expand(contribution: Mapping[str, Any] | None) -> dict[Cell, dict[str, int]]:
    """Every (bucket, value) cell a contribution adds to: its day and its month. The cells
    share one counters mapping: read it, never change it."""
    if not contribution:
        return {}
    day, site, counts = contribution["d"], contribution["s"], contribution["n"]
    month = day[:7]
    cells: dict[Cell, dict[str, int]] = {}
    for dim, value in contribution["v"]:
        cells[(f"{day}|{site}|{dim}", value)] = counts
        cells[(f"{month}|{site}|{dim}", value)] = counts
    return cells


def delta(
    new: Mapping[Cell, Mapping[str, int]], old: Mapping[Cell, Mapping[str, int]]
) -> dict[Cell, dict[str, int]]:
    """new − old, per cell and field, zero entries dropped."""
    out: dict[Cell, dict[str, int]] = {}
    for cell in {*new, *old}:
        n, o = new.get(cell, {}), old.get(cell, {})
        diff = {f: n.get(f, 0) - o.get(f, 0) for f in {*n, *o}}
        diff = {f: v for f, v in diff.items() if v}
        if diff:
            out[cell] = diff
    return out


def add_to(values: dict[str, dict[str, int]], value: str, diff: Mapping[str, int]) -> None:
    """Apply ``diff`` to one value's counters inside a bucket (dropping zeros)."""
    counts = values.setdefault(value, {})
    for field, n in diff.items():
        total = counts.get(field, 0) + n
        if total:
            counts[field] = total
        else:
            counts.pop(field, None)
    if not counts:
        del values[value]
