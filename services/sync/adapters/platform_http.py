"""The 好差评 platform over HTTP(S) (docs/api.md, "sync: the platform connector"): one
``requests`` session per connector, every request with connect and read timeouts and the
authentication headers of ``domain.platform``. Failures come back as the port's errors;
their messages never carry the secret, a header or a record."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from services.sync.domain.platform import auth_headers
from services.sync.ports import LinkFailure, PlatformRefusal
from services.sync.settings import PlatformSettings

# Answers about the request rather than its records: retried with backoff, never parked.
RETRIED = {401: "auth", 403: "auth", 408: "timeout", 429: "throttled"}


class PlatformHttp:
    def __init__(self, settings: PlatformSettings, site_code: str) -> None:
        self.settings = settings
        self.site_code = site_code
        self.path = urlsplit(settings.url).path or "/"
        self.session = requests.Session()

    def post(self, payload: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Hall-Site": self.site_code,
            **auth_headers(s.auth, s.secret, "POST", self.path, body, int(time.time())),
        }
        try:
            answer = self.session.post(
                s.url, data=body, headers=headers, timeout=(s.connect_timeout, s.read_timeout)
            )
        except requests.Timeout:
            raise LinkFailure("timeout", "好差评平台在规定时间内没有应答") from None
        except requests.RequestException as exc:
            self._reset()
            raise LinkFailure(
                "unreachable", f"与好差评平台的连接中断：{type(exc).__name__}"
            ) from None
        status = answer.status_code
        reply = _json(answer)
        if 200 <= status < 300:
            if not isinstance(reply, dict):
                raise LinkFailure("bad_reply", f"好差评平台的应答不是 JSON 对象（HTTP {status}）")
            return reply
        reason = _reason(reply) or f"HTTP {status}"
        if status >= 500 or status in RETRIED:
            label = RETRIED.get(status, "http_5xx")
            raise LinkFailure(label, f"好差评平台应答 HTTP {status}：{reason}"[:300])
        raise PlatformRefusal(status, reason, reply)

    def _reset(self) -> None:
        """A broken connection is not reused (a socket closed mid-response)."""
        self.session.close()
        self.session = requests.Session()

    def close(self) -> None:
        self.session.close()


def _json(answer: requests.Response) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _reason(reply: Any) -> str:
    if isinstance(reply, dict):
        for key in ("reason", "message", "error"):
            if isinstance(reply.get(key), str):
                return str(reply[key])[:300]
    return ""
