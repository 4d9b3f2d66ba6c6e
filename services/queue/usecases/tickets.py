"""Tickets (取号与办理): issuing with people ahead and an estimate, and the actions on one
ticket (start, complete, no-show, requeue, transfer, hold, resume, cancel)."""

from __future__ import annotations

from typing import Any

from services.common.errors import Conflict
from services.queue import domain, schemas
from services.queue.usecases.issuing import Issuing


class Tickets(Issuing):
    def take_ticket(
        self,
        category: str,
        channel: str = "kiosk",
        phone: str | None = None,
        priority: str | None = None,
        matter_code: str | None = None,
    ) -> dict[str, Any]:
        """取号: a new waiting ticket with people ahead and an estimate."""
        args = self._args(
            schemas.TakeArgs,
            category=category,
            channel=channel,
            phone=phone,
            priority=priority,
            matter_code=matter_code,
        )
        setup, version = self.setup()
        chosen = setup.category(args["category"])
        return self._issue(
            setup,
            version,
            chosen,
            channel=args["channel"],
            by=args["channel"],
            phone=args["phone"],
            priority=args["priority"],
            matter_code=args["matter_code"],
        )

    # --- reading -------------------------------------------------------------------------------

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        """A ticket as its holder sees it; while it waits, with the people ahead now."""
        args = self._args(schemas.TicketArgs, ticket_id=ticket_id)
        ticket = self._get(args["ticket_id"])
        shown = domain.ticket_view(ticket)
        if ticket["state"] == "waiting":
            shown["people_ahead"] = self.repo.people_ahead(ticket)
        return shown

    def ticket_history(self, ticket_id: str) -> list[dict[str, Any]]:
        """The audit trail of one ticket: who, when, from, to."""
        args = self._args(schemas.TicketArgs, ticket_id=ticket_id)
        return list(self._get(args["ticket_id"]).get("history", []))

    # --- actions -------------------------------------------------------------------------------

    def _do(self, ticket_id: str, action: str, by: str | None, **details: Any) -> dict[str, Any]:
        """``act`` for an entrypoint: the actor defaults to the staff at the ticket's window."""
        return domain.ticket_view(self.act(ticket_id, action, self._by(by, ticket_id), **details))

    def start_service(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        args = self._args(schemas.ActionArgs, ticket_id=ticket_id, window=window, by=by)
        return self._do(args["ticket_id"], "start", args["by"], window=args["window"])

    def complete(
        self,
        ticket_id: str,
        outcome: str = "done",
        application_id: str | None = None,
        matter_code: str | None = None,
        window: str | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """办结: the ticket's service ends; its evaluation invitation is written."""
        args = self._args(
            schemas.CompleteArgs,
            ticket_id=ticket_id,
            outcome=outcome,
            application_id=application_id,
            matter_code=matter_code,
            window=window,
            by=by,
        )
        ticket_id, by = args.pop("ticket_id"), args.pop("by")
        return self._do(ticket_id, "complete", by, **args)

    def no_show(
        self, ticket_id: str, window: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        args = self._args(schemas.ActionArgs, ticket_id=ticket_id, window=window, by=by)
        return self._do(args["ticket_id"], "no_show", args["by"], window=args["window"])

    def hold(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        args = self._args(schemas.ReasonArgs, ticket_id=ticket_id, reason=reason, by=by)
        return self._do(args["ticket_id"], "hold", args["by"], reason=args["reason"])

    def resume(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        args = self._args(schemas.ByArgs, ticket_id=ticket_id, by=by)
        return self._do(args["ticket_id"], "resume", args["by"])

    def cancel(
        self, ticket_id: str, reason: str | None = None, by: str | None = None
    ) -> dict[str, Any]:
        args = self._args(schemas.ReasonArgs, ticket_id=ticket_id, reason=reason, by=by)
        return self._do(args["ticket_id"], "cancel", args["by"] or "citizen", reason=args["reason"])

    def requeue(self, ticket_id: str, by: str | None = None) -> dict[str, Any]:
        """过号重排: once, behind ``requeue_behind`` waiting people of its category."""
        args = self._args(schemas.ByArgs, ticket_id=ticket_id, by=by)
        setup, _ = self.setup()
        ticket = self._get(args["ticket_id"])
        today = self._today()
        if ticket["date"] != today:
            rule = f"{ticket['number']} 不是今天的号，不能重排"
            raise Conflict(rule, {"ticket_id": [rule]})
        keys = self.repo.waiting_keys(today, ticket["category"])
        key = domain.requeue_key(ticket, keys, setup.policy.requeue_behind)
        moved = self.act(ticket["id"], "requeue", args["by"] or "staff", order_key=key)
        return domain.ticket_view(moved)

    def transfer(
        self,
        ticket_id: str,
        category: str | None = None,
        window: str | None = None,
        by: str | None = None,
    ) -> dict[str, Any]:
        """转移: to another category or window, keeping its place in time."""
        args = self._args(
            schemas.TransferArgs, ticket_id=ticket_id, category=category, window=window, by=by
        )
        setup, _ = self.setup()
        details: dict[str, Any] = {}
        if args["category"] is not None:
            details["category"] = setup.category(args["category"]).prefix
            details["category_name"] = setup.category(args["category"]).name
        if args["window"] is not None:
            details["window"] = setup.window(args["window"]).number
        return self._do(args["ticket_id"], "transfer", args["by"], **details)
