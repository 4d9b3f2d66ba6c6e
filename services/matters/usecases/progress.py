"""An application's progress for the citizen who holds its number (办件进度查询): found by
the number and the last six characters of the applicant's ID number, and shown without a
name, an ID number or a phone. The gateway asks on behalf of the progress page and
throttles wrong guesses per address; here an unknown number and a wrong suffix fail alike,
after the same work."""

from __future__ import annotations

import hmac
from typing import Any

from services.common.errors import NotFound
from services.common.validation import load
from services.matters import schemas
from services.matters.domain import CLOCK_SUSPENDED, DUE_STATES
from services.matters.domain.identity import id_suffix_hash
from services.matters.domain.records import ApplicationRecord
from services.matters.usecases.base import MattersBase

NOT_FOUND = "没有找到该办件，请核对办件编号和证件号码后 6 位"
SHOWN = ("number", "matter_name", "state", "state_name", "accepted_on", "due_date")
SHOWN_IF_ANY = ("completed_on", "delivered_on")


class Progress(MattersBase):
    def application_progress(self, number: Any, id_suffix: Any) -> dict[str, Any]:
        args = load(schemas.PROGRESS, {"number": number, "id_suffix": id_suffix})
        doc = self.repo.application_numbered(args["number"])
        wanted = id_suffix_hash(self.salt, args["number"], args["id_suffix"])
        # An unknown number is compared against a value no hash equals, so it costs the same.
        kept = (doc.get("applicant_suffix_hash") if doc else None) or ""
        if doc is None or not hmac.compare_digest(wanted, kept.ljust(len(wanted), "-")):
            raise NotFound(NOT_FOUND, {"number": ["未找到"]})
        return citizen_view(self.application_view(doc), doc)


def citizen_view(view: dict[str, Any], doc: ApplicationRecord) -> dict[str, Any]:
    """What the applicant may read on a phone: the matter, the state and the dates, and the
    notices that ask something of them; nothing that names or identifies anybody."""
    shown = {k: view.get(k) for k in SHOWN}
    shown.update({k: view[k] for k in SHOWN_IF_ANY if view.get(k)})
    due = view.get("due_state")
    shown["due_state"] = due
    shown["due_state_name"] = DUE_STATES.get(due, "") if due else ""
    return {**shown, "notices": notices(doc)}


def notices(doc: ApplicationRecord) -> list[dict[str, Any]]:
    """The one-time notice's missing materials while they are due, a refusal's reason and
    basis, a suspension of the time limit while it lasts, and, for 代办, that the station
    forwarded it (until the result is back)."""
    found: list[dict[str, Any]] = []
    notice = doc.get("supplement_notice")
    if doc["state"] == "supplement_required" and notice:
        items = [f"{i['name']}（{i['problem']}）" for i in notice["items"]]
        found.append({"title": notice["title"], "text": "请补齐以下材料：", "items": items})
    refusal = doc.get("refusal")
    if doc["state"] == "not_accepted" and refusal:
        text = f"{refusal['reason']}（依据：{refusal['basis']}）"
        found.append({"title": refusal["title"], "text": text, "items": []})
    periods = doc.get("suspensions") or []
    clock = doc.get("handling_clock") or doc["clock"]  # 代办: the handling site's clock
    if clock == CLOCK_SUSPENDED and periods:
        last = periods[-1]
        text = f"{last['reason_name']}，自 {last['since_on']} 起暂停计时"
        found.append({"title": "办理时限中止", "text": text, "items": []})
    if doc.get("handled_by") and doc["state"] not in ("completed", "delivered"):
        text = "本站已将您的申请转报上级站点办理，办理结果由本站通知您领取"
        found.append({"title": "代办", "text": text, "items": []})
    return found
