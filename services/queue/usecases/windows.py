"""Windows and staff (窗口): sign in and out (AB岗 backup sign-ins), open, pause, close."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.common.clock import iso
from services.common.errors import Conflict
from services.common.store import Doc
from services.queue import domain, schemas
from services.queue.usecases.base import QueueBase


class Windows(QueueBase):
    def windows(self) -> list[dict[str, Any]]:
        """Every configured window with its live state."""
        setup, _ = self.setup()
        docs = {d["number"]: d for d in self.repo.windows.find()}
        result = []
        for number, window in setup.windows.items():
            doc = docs.get(number) or {"state": "closed", "staff_id": None, "number": number}
            result.append(
                {
                    **domain.window_view(doc),
                    "name": window.name,
                    "kind": window.kind,
                    "categories": dict(window.weights),
                }
            )
        return result

    def sign_in(self, window: str, staff_id: str | None) -> dict[str, Any]:
        args = self._args(schemas.StaffArgs, window=window, staff_id=staff_id)
        return self._sign_in(args["window"], args["staff_id"])

    def _sign_in(self, number: str, staff_id: str) -> dict[str, Any]:
        setup, _ = self.setup()
        backup = domain.check_sign_in(setup, staff_id, number)
        for other in self.repo.windows.find({"staff_id": staff_id}):
            if other["number"] != number:
                rule = f"{staff_id} 已在 {other['number']} 号窗口签到，请先签退"
                raise Conflict(rule, {"staff_id": [rule]})

        def change(doc: Doc) -> dict[str, Any]:
            if doc.get("staff_id") not in (None, staff_id):
                rule = f"{number} 号窗口已由 {doc['staff_id']} 签到，请其先签退"
                raise Conflict(rule, {"window": [rule]})
            return {"staff_id": staff_id, "backup": backup}

        return self._window_action(number, "sign_in", staff_id, change)

    def sign_out(self, window: str, staff_id: str | None) -> dict[str, Any]:
        args = self._args(schemas.StaffArgs, window=window, staff_id=staff_id)
        number, staff_id = args["window"], args["staff_id"]
        self._refuse_if_busy(number, "签退")

        def change(doc: Doc) -> dict[str, Any]:
            if doc.get("staff_id") != staff_id:
                rule = f"{staff_id} 未在 {number} 号窗口签到"
                raise Conflict(rule, {"staff_id": [rule]})
            return {"staff_id": None, "backup": False, "state": "closed"}

        return self._window_action(number, "sign_out", staff_id, change)

    def open_window(self, window: str, staff_id: str | None = None) -> dict[str, Any]:
        """Open for calls; with ``staff_id``, signing that person in first if needed."""
        args = self._args(schemas.CallArgs, window=window, staff_id=staff_id)
        number, staff_id = args["window"], args["staff_id"]
        if staff_id is not None:
            current = self._window_doc(number)
            if current is None or current.get("staff_id") != staff_id:
                self._sign_in(number, staff_id)

        def change(doc: Doc) -> dict[str, Any]:
            if not doc.get("staff_id"):
                rule = f"{number} 号窗口没有工作人员签到，不能开放"
                raise Conflict(rule, {"staff_id": [rule]})
            return {"state": "open", "pause_reason": None}

        return self._window_action(number, "open", staff_id or "staff", change)

    def pause_window(
        self, window: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        args = self._args(schemas.PauseArgs, window=window, reason=reason, by=by)
        number = args["window"]

        def change(doc: Doc) -> dict[str, Any]:
            if doc["state"] != "open":
                rule = f"{number} 号窗口当前{domain.WINDOW_STATES[doc['state']]}，不能暂停"
                raise Conflict(rule, {"window": [rule]})
            return {"state": "paused", "pause_reason": args["reason"] or "暂停服务"}

        return self._window_action(number, "pause", args["by"] or "staff", change)

    def close_window(self, window: str, by: str | None = None) -> dict[str, Any]:
        args = self._args(schemas.CloseWindowArgs, window=window, by=by)
        number = args["window"]
        self._refuse_if_busy(number, "关闭")
        return self._window_action(
            number,
            "close",
            args["by"] or "staff",
            lambda _doc: {"state": "closed", "pause_reason": None},
        )

    def _window_action(
        self, number: str, action: str, by: str, change: Callable[[Doc], dict[str, Any]]
    ) -> dict[str, Any]:
        setup, _ = self.setup()
        setup.window(number)
        now = iso(self.clock())

        def apply(doc: Doc | None) -> dict[str, Any]:
            assert doc is not None
            return domain.with_window_history(doc, change(doc), action, by, now)

        def create() -> Doc:
            return dict(domain.new_window(self.site_code, number, now))

        doc = self.repo.modify(
            self.repo.windows, domain.window_id(self.site_code, number), apply, create
        )
        assert doc is not None
        self._refresh_window_gauge()
        return domain.window_view(doc)

    def _refuse_if_busy(self, number: str, verb: str) -> None:
        busy = self.repo.at_window(number)
        if busy:
            rule = f"{number} 号窗口的 {busy[0]['number']} 尚未处理完，不能{verb}"
            raise Conflict(rule, {"window": [rule]})
