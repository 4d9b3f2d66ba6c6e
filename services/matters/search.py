"""An in-memory keyword index over the current catalog (standard library only).

The storage port filters on declared fields only, so keyword search over names and aliases
is served from this index, kept per container and brought up to date from the ``matters``
collection's change feed before every query (one ``last_seq`` read when nothing changed).

Chinese has no spaces, so terms are matched through inverted indexes of single characters
and character bigrams (exact for one- and two-character terms, verified as substrings for
longer ones). Filters are sets too, so a query is mostly set intersections done in C; the
page is then taken in rank order (name starts with the keyword, name contains it, an alias
contains it; then by code) with an early exit, so a broad keyword costs about as much as a
narrow one.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

# Above this many candidates, a page is taken by walking the code order with an early exit.
_WALK_FROM = 256


def _normalise(text: str) -> str:
    return "".join(text.split()).lower()


def _grams(text: str) -> set[str]:
    return {text[i : i + 2] for i in range(len(text) - 1)}


@dataclass
class _Postings:
    """Character and bigram postings over one text per code."""

    chars: dict[str, set[str]] = field(default_factory=dict)
    grams: dict[str, set[str]] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, code: str, text: str) -> None:
        self.texts[code] = text
        for char in set(text) - {"|"}:
            self.chars.setdefault(char, set()).add(code)
        for gram in _grams(text):
            if "|" not in gram:
                self.grams.setdefault(gram, set()).add(code)

    def remove(self, code: str) -> None:
        text = self.texts.pop(code, None)
        if text is None:
            return
        for char in set(text):
            self.chars.get(char, set()).discard(code)
        for gram in _grams(text):
            self.grams.get(gram, set()).discard(code)

    def matching(self, term: str) -> set[str]:
        """Codes whose text contains ``term`` (exactly)."""
        if len(term) == 1:
            return self.chars.get(term, set())
        if len(term) == 2:
            return self.grams.get(term, set())
        best = min((self.grams.get(g, set()) for g in _grams(term)), key=len)
        return {code for code in best if term in self.texts[code]}


@dataclass
class CatalogIndex:
    """Current matters by code: keyword postings plus one set per filter value."""

    seq: int = 0
    summaries: dict[str, dict[str, Any]] = field(default_factory=dict)
    text: _Postings = field(default_factory=_Postings)  # name and aliases
    names: _Postings = field(default_factory=_Postings)  # name only
    facets: dict[tuple[str, Any], set[str]] = field(default_factory=dict)
    starts: dict[str, set[str]] = field(default_factory=dict)  # first 1 and 2 chars of name
    _keys: dict[str, list[tuple[str, Any]]] = field(default_factory=dict)
    _order: list[str] | None = None  # every code, sorted; rebuilt after a change

    def apply(
        self, docs: Iterable[Mapping[str, Any]], summary: Callable[[Mapping[str, Any]], Any]
    ) -> None:
        """Index (or re-index) each current-matter document; ``summary(doc)`` is what a
        search returns for it."""
        for doc in docs:
            code = str(doc["id"])
            self._remove(code)
            name = _normalise(str(doc.get("name", "")))
            aliases = [_normalise(str(a)) for a in doc.get("aliases", [])]
            self.text.add(code, "|".join([name, *aliases]))
            self.names.add(code, name)
            for head in {name[:1], name[:2]} - {""}:
                self.starts.setdefault(head, set()).add(code)
            department = str((doc.get("agency") or {}).get("name", ""))
            keys = [
                ("status", doc.get("status")),
                ("type", doc.get("type")),
                ("department", department),
                ("online", bool(doc.get("online"))),
                ("availability", doc.get("availability")),
                *(("tier", t) for t in {*doc.get("handled_at", []), *doc.get("proxy_at", [])}),
            ]
            for key in keys:
                self.facets.setdefault(key, set()).add(code)
            self._keys[code] = keys
            self.summaries[code] = summary(doc)
            self.seq = max(self.seq, int(doc.get("_seq", 0)))
            self._order = None

    def _remove(self, code: str) -> None:
        if self.summaries.pop(code, None) is None:
            return
        self.text.remove(code)
        name = self.names.texts.get(code, "")
        self.names.remove(code)
        for head in {name[:1], name[:2]} - {""}:
            self.starts.get(head, set()).discard(code)
        for key in self._keys.pop(code, []):
            self.facets.get(key, set()).discard(code)

    def search(
        self,
        q: str = "",
        *,
        type: str | None = None,
        department: str | None = None,
        tier: str | None = None,
        online: bool | None = None,
        include_retired: bool = False,
        availability: str | None = None,
        codes: list[str] | None = None,
        limit: int = 20,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, page)``: matches ranked name-prefix, name, alias, then by code; only
        ``codes`` when given."""
        terms = [_normalise(t) for t in q.split() if t.strip()]
        sets: list[set[str]] = [self.text.matching(t) for t in terms]
        if codes is not None:
            sets.append(set(codes) & self.summaries.keys())
        if not include_retired:
            sets.append(self.facets.get(("status", "published"), set()))
        for key, value in (
            ("type", type),
            ("tier", tier),
            ("online", online),
            ("availability", availability),
        ):
            if value is not None:
                sets.append(self.facets.get((key, value), set()))
        if department is not None:
            sets.append(self._department(department))
        if sets:
            sets.sort(key=len)
            matches = set(sets[0]).intersection(*sets[1:])
        else:
            matches = set(self.summaries)
        want = offset + limit
        if terms:
            first = terms[0]
            in_name = matches & self.names.matching(first)
            prefix = in_name & self.starts.get(first[:2], set())
            if len(first) > 2:
                prefix = {c for c in prefix if self.names.texts[c].startswith(first)}
            groups = [prefix, in_name - prefix, matches - in_name]
        else:
            groups = [matches]
        page: list[str] = []
        for group in groups:
            if len(page) >= want:
                break
            page.extend(self._first(group, want - len(page)))
        return len(matches), [self.summaries[c] for c in page[offset:want]]

    def _department(self, part: str) -> set[str]:
        found: set[str] = set()
        for (key, value), codes in self.facets.items():
            if key == "department" and part in value:
                found |= codes
        return found

    def _first(self, group: set[str], n: int) -> list[str]:
        """The ``n`` smallest codes of ``group``."""
        if len(group) <= _WALK_FROM:
            return heapq.nsmallest(n, group)
        if self._order is None:
            self._order = sorted(self.summaries)
        return list(islice((c for c in self._order if c in group), n))
