"""The key check, the child's end: a signed probe without records, so a wrong or
unregistered ``SYNC.key`` shows at once, not only when there is something to send."""

from __future__ import annotations

from typing import Any

from services.common.errors import Conflict, Forbidden
from services.sync import domain
from services.sync.ports import MethodMissing, UpstreamSession
from services.sync.usecases.base import KEY, SyncBase, outcome


class KeyCheck(SyncBase):
    def _probe_key(self, up: UpstreamSession) -> dict[str, Any]:
        """Let the upstream verify a signed probe with the key it holds for this site."""
        upstream = self.context.identity.upstream
        key = self._key()
        probe = domain.sign(
            {
                "schema": domain.SCHEMA,
                "child": self.code,
                "upstream": upstream,
                "sent_at": self._now_iso(),
            },
            key,
        )
        try:
            answer = up.verify_key(probe)
        except MethodMissing:
            note = f"上级站点 {upstream} 的同步服务版本较旧，不能核验密钥（没有 sync.verify_key）"
            return {"verified": False, "note": note}
        except Forbidden as exc:
            message = f"上级站点 {upstream} 拒绝了本站点 {self.code} 的同步密钥：{exc.message}"
            raise Forbidden(message, exc.fields) from None
        return {"verified": True, "key": answer.get("key"), "upstream": answer.get("site_code")}

    def check_key_now(self) -> dict[str, Any]:
        """The key check on demand (``hallctl check``), on its own connection: it does not
        wait for a push in progress."""
        upstream = self.context.identity.upstream
        if upstream is None:
            raise Conflict("本站点没有上级站点，无需核验同步密钥", {"SITE.upstream": ["未配置"]})
        try:
            with self.upstream.session(min(self.settings.rpc_timeout, 10.0)) as up:
                result = self._attempt(KEY, self._probe_key, up)
        except Exception as exc:  # noqa: BLE001  (the upstream broker could not be reached)
            result = self._failed(KEY, exc)
        result.pop("error_exc", None)
        return {"site_code": self.code, "upstream": upstream, **result, "status": self.key_status()}

    def key_status(self) -> dict[str, Any]:
        """The last key check: ``ok`` True (accepted), False (refused or failed), None (not
        checked yet, or the upstream cannot check keys)."""
        doc = self.repo.outcome(KEY)
        events = {
            True: doc.get("last_success") or "",
            False: doc.get("last_error_at") or "",
            None: doc.get("unverified_at") or "",
        }
        latest = max(events, key=lambda k: events[k])
        return {
            "ok": latest if events[latest] else None,
            "key_in_use": doc.get("key_in_use"),
            **outcome(doc),
            "unverified_at": doc.get("unverified_at"),
            "note": doc.get("note") if latest is None and events[None] else None,
        }
