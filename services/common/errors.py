"""Typed errors shared by every service.

Plain Python, no framework: domain code raises these directly. ``services.common.remote``
registers them with Nameko, so an RPC caller gets the same type back (not a generic
``RemoteError``); each maps to one HTTP status for the JSON API. Messages are Chinese
because clerks and citizens read them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class HallError(Exception):
    """Base of every error a caller may see; carries a code, a message and field details."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, fields: Mapping[str, Sequence[str]] | None = None) -> None:
        # Text only, whatever a caller passed: the error is printed, logged and serialised
        # for the RPC reply, and a failure there would kill the worker's container.
        self.message = str(message)
        self.fields: dict[str, list[str]] = {
            str(k): [str(m) for m in ([v] if isinstance(v, str) else v)]
            for k, v in (fields or {}).items()
        }
        super().__init__(self.message, self.fields)

    def __str__(self) -> str:
        if all(m in self.message for v in self.fields.values() for m in v):
            return self.message
        details = "；".join(f"{k}: {'，'.join(v)}" for k, v in sorted(self.fields.items()))
        return f"{self.message}（{details}）"

    def to_json(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "fields": self.fields}


class InvalidInput(HallError):
    """The input breaks a rule; ``fields`` maps each offending field to its messages."""

    code = "invalid_input"
    http_status = 400

    def __init__(
        self, message: str = "输入有误", fields: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        super().__init__(message, fields)

    @classmethod
    def field(cls, name: str, rule: str) -> InvalidInput:
        """One field broke one rule: the commonest case."""
        return cls(f"{name}：{rule}", {name: [rule]})


class NotFound(HallError):
    code = "not_found"
    http_status = 404


class Conflict(HallError):
    """A duplicate, a lost compare-and-set, or an illegal state transition."""

    code = "conflict"
    http_status = 409


class Forbidden(HallError):
    code = "forbidden"
    http_status = 403


class TooManyRequests(Forbidden):
    """Refused for now: the caller made this call too often (a lookup by ID number, a
    password guess); the message says when to try again."""

    code = "too_many_requests"
    http_status = 429


class StoreUnavailable(HallError):
    """The store cannot be reached; never shown to citizens as their fault."""

    code = "store_unavailable"
    http_status = 503


def http_response(error: HallError) -> tuple[int, dict[str, str], str]:
    """The one mapping from a typed error to an HTTP JSON response."""
    return (
        error.http_status,
        {"Content-Type": "application/json; charset=utf-8"},
        json.dumps(error.to_json(), ensure_ascii=False),
    )


class UpstreamUnavailable(HallError):
    """The upstream site cannot be reached now; work continues locally and retries later."""

    code = "upstream_unavailable"
    http_status = 503


class InternalError(HallError):
    """What a caller gets for an unexpected error: the cause is logged (with its traceback,
    scrubbed of personal data) and counted, never sent back."""

    code = "internal_error"
    http_status = 500

    def __init__(
        self,
        message: str = "服务内部错误，已记录；请稍后再试或联系运维人员",
        fields: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(message, fields)
