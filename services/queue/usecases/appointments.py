"""Appointments (预约): slots, booking within capacity (one per phone, category and day; a
phone with repeated no-shows blocked), cancelling, check-in into a ticket, the sweeps."""

from __future__ import annotations

import secrets
from datetime import date, datetime, timedelta
from typing import Any
from uuid import uuid4

from services.common.clock import iso
from services.common.errors import Conflict, NotFound
from services.common.store import Doc
from services.queue import domain, schemas
from services.queue.domain.records import Booking
from services.queue.usecases.issuing import Issuing

CODE_ATTEMPTS = 20


class Appointments(Issuing):
    def slots(self, category: str, date: str) -> list[dict[str, Any]]:
        """The slots of a category on one day with their capacity and what is left."""
        args = self._args(schemas.SlotsArgs, category=category, date=date)
        setup, _ = self.setup()
        chosen = setup.category(args["category"])
        result = []
        for start in domain.slot_starts(chosen):
            text = f"{start:%H:%M}"
            key = domain.slot_key(args["date"], chosen.prefix, text)
            taken = self.context.store.next_value(key, 0)
            result.append(
                {
                    "slot": text,
                    "capacity": chosen.slot_capacity,
                    "booked": taken,
                    "available": max(0, chosen.slot_capacity - taken),
                }
            )
        return result

    def book(
        self, category: str, date: str, slot: str, phone: str, channel: str = "web"
    ) -> dict[str, Any]:
        """预约: a slot of a category on a working day, within capacity."""
        args = self._args(
            schemas.BookArgs,
            category=category,
            date=date,
            slot=slot,
            phone=phone,
            channel=channel,
        )
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        day = args["date"]
        chosen = setup.category(args["category"])
        start = domain.parse_hhmm(args["slot"], "slot")
        working = self._working(chosen, day)
        domain.check_booking(chosen, day, start, local, working, setup.policy)
        phone_hash, masked = domain.protect_phone(args["phone"], self.salt)
        missed = self.repo.missed_bookings(phone_hash)
        domain.check_not_blocked((date_of(b) for b in missed), local.date(), setup.policy)
        domain.check_not_booked(self.repo.open_bookings(phone_hash), day, chosen)
        key = domain.slot_key(day, chosen.prefix, args["slot"])
        if self.context.store.next_value(key) > chosen.slot_capacity:
            self.context.store.next_value(key, -1)
            rule = f"{day.isoformat()} {args['slot']} 的{chosen.name}已约满，请选择其他时段"
            raise Conflict(rule, {"slot": [rule]})
        moment = iso(now)
        hold = domain.booking_hold(day, chosen.prefix, phone_hash)
        for _ in range(CODE_ATTEMPTS):
            booking: Booking = {
                "id": f"{self.site_code}-{uuid4().hex}",
                "schema": 1,
                "site_code": self.site_code,
                "code": f"{secrets.randbelow(10**8):08d}",
                "category": chosen.prefix,
                "category_name": chosen.name,
                "date": day.isoformat(),
                "slot": f"{start:%H:%M}",
                "phone_hash": phone_hash,
                "phone_masked": masked,
                "channel": args["channel"],
                "state": "booked",
                "ticket_id": None,
                "hold": hold,
                "created_at": moment,
                "updated_at": moment,
            }
            if self.repo.insert_booking(booking):
                labels = self.metrics.by_category(chosen.prefix)
                self.metrics.bookings.labels(**labels, state="booked").inc()
                return domain.booking_view(booking)
            try:  # refused by the hold (another process booked this phone just now) …
                domain.check_not_booked(self.repo.open_bookings(phone_hash), day, chosen)
            except Conflict:
                self.context.store.next_value(key, -1)
                raise
            # … or by the code (a collision): try another code
        self.context.store.next_value(key, -1)  # pragma: no cover - 20 code collisions
        raise Conflict("预约码生成失败，请重试")  # pragma: no cover

    def _booking(self, ref: str) -> Doc:
        doc = self.repo.booking_by_ref(ref)
        if doc is None:
            raise NotFound("没有这个预约", {"booking": ["预约号或预约码不存在"]})
        return doc

    def booking(self, booking: str) -> dict[str, Any]:
        """A booking by its id or its 8-digit code."""
        args = self._args(schemas.BookingArgs, booking=booking)
        return domain.booking_view(self._booking(args["booking"]))

    def cancel_booking(self, booking: str) -> dict[str, Any]:
        args = self._args(schemas.BookingArgs, booking=booking)
        doc = self._booking(args["booking"])
        if doc["state"] != "booked":
            rule = f"预约当前为 {doc['state']}，不能取消"
            raise Conflict(rule, {"booking": [rule]})
        updated = self.repo.bookings.update(
            doc["id"],
            {"state": "cancelled", "hold": doc["id"], "updated_at": iso(self.clock())},
            expect={"state": "booked"},
        )
        if updated is None:
            raise Conflict("预约刚刚被处理，不能取消", {"booking": ["并发修改"]})
        self.context.store.next_value(domain.slot_key_of(doc), -1)
        labels = self.metrics.by_category(doc["category"])
        self.metrics.bookings.labels(**labels, state="cancelled").inc()
        return domain.booking_view(updated)

    def check_in(self, booking: str) -> dict[str, Any]:
        """签到: on time → appointment lane; late → normal queue; too early → refused."""
        args = self._args(schemas.BookingArgs, booking=booking)
        setup, version = self.setup()
        doc = self._booking(args["booking"])
        if doc["state"] != "booked":
            rule = f"预约当前为 {doc['state']}，不能签到"
            raise Conflict(rule, {"booking": [rule]})
        now = self.clock()
        local = self.local(setup, now)
        slot_at = self._slot_at(doc, local)
        on_time = domain.check_in_window(slot_at, local, setup.policy)
        category = setup.category(doc["category"])
        claimed = self.repo.bookings.update(
            doc["id"],
            {
                "state": "checked_in",
                "checked_in_at": iso(now),
                "on_time": on_time,
                "hold": doc["id"],
            },
            expect={"state": "booked"},
        )
        if claimed is None:
            raise Conflict("该预约已签到或已取消", {"booking": ["并发修改"]})
        try:
            ticket = self._issue(
                setup,
                version,
                category,
                channel="appointment",
                by="appointment",
                booking_id=doc["id"],
                on_time=on_time,
                order_key=domain.timestamp(slot_at) if on_time else None,
                now=now,
            )
        except BaseException:
            self._give_back(claimed, {"state": "checked_in"})
            raise
        self.repo.bookings.update(doc["id"], {"ticket_id": ticket["id"]})
        labels = self.metrics.by_category(category.prefix)
        self.metrics.bookings.labels(**labels, state="checked_in").inc()
        return {**ticket, "on_time": on_time}

    @staticmethod
    def _slot_at(doc: Doc, local: datetime) -> datetime:
        return datetime.combine(
            date_of(doc), domain.parse_hhmm(doc["slot"], "slot"), tzinfo=local.tzinfo
        )

    def repair_check_ins(self) -> int:
        """A crash between claiming a booking and recording its ticket leaves it checked in
        without a ticket (the citizen could not check in again). Older than one sweep
        interval, such a booking gets its ticket linked if it was issued, or goes back to
        booked so the citizen can check in again. Returns how many were repaired."""
        now = self.clock()
        today = self._today()
        settled = iso(now - timedelta(seconds=self.settings.sweep_seconds))
        stranded = [
            doc
            for doc in self.repo.bookings.find({"date": today, "state": "checked_in"})
            if doc.get("ticket_id") is None and doc["checked_in_at"] < settled
        ]
        if not stranded:
            return 0
        issued = {
            t["booking_id"]: t["id"]
            for t in self.repo.tickets.find(
                {"state": {"$in": list(domain.STATE_NAMES)}, "date": today}
            )
            if t.get("booking_id")
        }
        repaired = 0
        for doc in stranded:
            ticket_id = issued.get(doc["id"])
            expect = {"state": "checked_in", "version": doc["version"]}
            if ticket_id is not None:
                done = self.repo.bookings.update(doc["id"], {"ticket_id": ticket_id}, expect)
            else:
                done = self._give_back(doc, expect)
            if done is not None:
                repaired += 1
        return repaired

    def _give_back(self, doc: Doc, expect: dict[str, Any]) -> Doc | None:
        """A check-in without its ticket goes back to booked, holding its phone's category
        and day again; when the phone booked that category and day meanwhile, it is
        cancelled instead (one booking per phone, category and day)."""
        hold = domain.booking_hold(date_of(doc), doc["category"], doc["phone_hash"])
        back = {"state": "booked", "checked_in_at": None, "on_time": None, "hold": hold}
        try:
            return self.repo.bookings.update(doc["id"], back, expect)
        except Conflict:
            cancelled = {"state": "cancelled", "checked_in_at": None, "on_time": None}
            done = self.repo.bookings.update(doc["id"], cancelled, expect)
            if done is not None:
                self.context.store.next_value(domain.slot_key_of(doc), -1)
            return done

    def sweep_bookings(self, force_day: date | None = None) -> int:
        """Bookings past their check-in window become no-shows (they count towards a
        block); with ``force_day`` (day close), every booking of that day and before."""
        setup, _ = self.setup()
        now = self.clock()
        local = self.local(setup, now)
        limit_day = max(local.date(), force_day or local.date())
        missed = 0
        for doc in self.repo.bookings.find(
            {"date": {"$lte": limit_day.isoformat()}, "state": "booked"}
        ):
            closing = force_day is not None and doc["date"] <= force_day.isoformat()
            if closing or domain.booking_missed(self._slot_at(doc, local), local, setup.policy):
                done = self.repo.bookings.update(
                    doc["id"],
                    {"state": "no_show", "hold": doc["id"], "updated_at": iso(now)},
                    expect={"state": "booked"},
                )
                if done is not None:
                    missed += 1
                    labels = self.metrics.by_category(doc["category"])
                    self.metrics.bookings.labels(**labels, state="no_show").inc()
        return missed


def date_of(booking: Doc) -> date:
    return date.fromisoformat(booking["date"])
