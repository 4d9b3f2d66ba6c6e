"""A citizen's own pages on a phone, without signing in (docs/screens.md, "Citizen's
phone"): rating a ticket or an application from the QR code of its slip or receipt
(``/m/r/<token>``), and an application's progress (``/m/a``). The gateway calls rating
and matters as itself (``service:gateway``, through the bridge): what is rated comes from
the link's token and the channel is ``qr_code``, never from the request; wrong progress
guesses are throttled per address with the sign-in lockout's rules (``domain.Lockout``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.common.errors import Conflict, NotFound, TooManyRequests
from services.common.validation import load
from services.gateway import domain, schemas
from services.gateway.app import GatewayApp

NO_LINK = "链接无效或已失效"
NOT_YET = "服务结束后即可评价，请在办结后再扫码"
RATED = "本次服务已评价过，无需重复评价，感谢您的参与"
NOT_FOUND = "没有找到该办件，请核对办件编号和证件号码后 6 位"
RATABLE = ("ticket", "application")  # the link kinds a citizen can rate


Call = Callable[..., Any]  # call(service, method, *args): an RPC of this site as the gateway


class Citizens:
    """The use cases of the citizen's pages; ``call`` reaches rating and matters."""

    def __init__(self, app: GatewayApp, call: Call) -> None:
        self.app = app
        self.call = call

    # --- capability links -----------------------------------------------------------------

    def token(self, kind: str, ref_id: str) -> str:
        return domain.capability_link(self.app.keys().secret, kind, ref_id)

    def rated(self, token: str) -> tuple[str, str]:
        """The ticket or application a genuine link names (under any current key), else
        ``NotFound`` saying nothing of what exists: a guessed or altered token learns nothing."""
        for key in self.app.keys().keys.values():
            for kind in RATABLE:
                ref_id = domain.ref_of_link(key, kind, token[:512])
                if ref_id is not None:
                    return kind, ref_id
        raise NotFound(NO_LINK, {"token": ["无效"]})

    # --- rating from the phone ------------------------------------------------------------

    def rating_state(self, token: str) -> str:
        """``none`` (the service has not ended), ``open`` or ``answered``."""
        kind, ref_id = self.rated(token)
        state: str = self.call("rating", "invitation_status", kind, ref_id)["state"]
        return state

    def rate(self, token: str, body: Any) -> dict[str, Any]:
        """Submit the citizen's rating once: the same ``request_id`` again (a lost reply)
        gets the first result, any other second rating a calm refusal."""
        kind, ref_id = self.rated(token)
        data = load(schemas.CitizenRatingSchema, body)
        status = self.call("rating", "invitation_status", kind, ref_id, data["request_id"])
        if status["state"] == "none":
            raise Conflict(NOT_YET, {"token": ["服务尚未结束"]})
        if status["state"] == "answered" and not status["mine"]:
            raise Conflict(RATED, {"token": ["已评价"]})
        stored = self.call("rating", "submit_evaluation", evaluation(kind, ref_id, data))
        return {"level": stored["level"], "level_zh": stored["level_zh"]}

    # --- an application's progress --------------------------------------------------------

    def progress(self, body: Any, address: str) -> dict[str, Any]:
        """The citizen's view of the application, for its number and ID suffix; an unknown
        number and a wrong suffix get the same refusal and count as one failed guess."""
        data = load(schemas.ProgressQuerySchema, body)
        keys, now = (f"progress:{address}",), self.app.clock()
        minutes = self.app.locked_minutes(keys, now)
        if minutes is not None:
            raise TooManyRequests(
                f"查询失败次数过多，请 {minutes} 分钟后再试", {"number": ["已暂时锁定"]}
            )
        try:
            found: dict[str, Any] = self.call(
                "matters", "application_progress", data["number"], data["id_suffix"]
            )
        except NotFound:
            self.app.count_failure(keys, now)
            raise NotFound(NOT_FOUND, {"number": ["未找到"]}) from None
        return found


def evaluation(kind: str, ref_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """The evaluation the gateway submits: the link's service, the ``qr_code`` channel and
    only the citizen's choices (rating checks the level, the reasons and the phone)."""
    body: dict[str, Any] = {
        "service_ref": {"kind": kind, "id": ref_id},
        "channel": "qr_code",
        "level": data["level"],
        "request_id": data["request_id"],
        "rater": {"real_name": True, "phone": data["phone"]}
        if data["phone"]
        else {"real_name": False},
    }
    if data["tags"] or data["text"]:
        body["reasons"] = {"tags": data["tags"], "text": data["text"]}
    return body
