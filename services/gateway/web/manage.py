"""The manager's console (大厅管理): the page's shell, and the gateway's own routes it uses
for what lives in the gateway — device pairing codes, paired devices, staff accounts.

Everything else on the page (windows, queue, cases, applications, the queue's
configuration) goes through the bridge (``/rpc/…``) as the manager, so the services' role
tables decide. These routes are all ``POST`` with JSON, also those that only read: a
signed-in caller is then always checked by ``_principal`` with the session's CSRF token,
so another origin can neither trigger a change nor make the browser fetch the lists; and
they are answered for a staff member holding ``manager`` only, never for a device."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from services.common import service as base
from services.common.errors import Forbidden
from services.common.identity import Kind, Principal
from services.common.validation import Arguments, identifier, load
from services.gateway import schemas
from services.gateway.domain import delegation
from services.gateway.web.screens import request_json
from services.gateway.web.staff import StaffPages


class StaffIdSchema(Arguments):
    staff_id = identifier(64, required=True)


class ManageConsole(StaffPages):
    """Routes mixed into ``GatewayService`` (which provides ``app`` and ``_principal``)."""

    def _principal(self, request: Request) -> Principal:
        raise NotImplementedError

    @base.api("GET", "/manage", exposed=True)
    def manage_page(self, request: Request) -> Response:
        return self.staff_page(request, "manage", "大厅管理", {"manager"})

    @base.api("POST", "/manage/pairing", exposed=True)
    def manage_pairing(self, request: Request) -> dict[str, Any]:
        """A one-time pairing code ``{code, role, window, expires_at}`` for a new device."""
        who = self._manager(request)
        wanted = load(schemas.PairingSchema, request_json(request))
        return self.app.create_pairing(wanted["role"], wanted["window"], who.id)

    @base.api("POST", "/manage/devices", exposed=True)
    def manage_devices(self, request: Request) -> dict[str, Any]:
        self._manager(request)
        return {"items": self.app.list_devices()}

    @base.api("POST", "/manage/devices/revoke", exposed=True)
    def manage_revoke_device(self, request: Request) -> dict[str, Any]:
        who = self._manager(request)
        device_id = load(schemas.DeviceSchema, request_json(request))["device_id"]
        return self.app.revoke_device(device_id, who.id)

    @base.api("POST", "/manage/staff", exposed=True)
    def manage_staff(self, request: Request) -> dict[str, Any]:
        self._manager(request)
        return {"items": self.app.list_staff()}

    @base.api("POST", "/manage/staff/add", exposed=True)
    def manage_add_staff(self, request: Request) -> dict[str, Any]:
        who = self._manager(request)
        account = request_json(request)
        delegation.may_grant(load(schemas.StaffSchema, account)["roles"])
        return self.app.add_staff(account, who.id)

    @base.api("POST", "/manage/staff/disable", exposed=True)
    def manage_disable_staff(self, request: Request) -> dict[str, Any]:
        who = self._manager(request)
        staff_id = load(StaffIdSchema, request_json(request))["staff_id"]
        known = {s["id"]: s["roles"] for s in self.app.list_staff()}
        delegation.may_disable(who.id, staff_id, known.get(staff_id, []))
        return self.app.disable_staff(staff_id, who.id)

    def _manager(self, request: Request) -> Principal:
        """The signed-in manager making the request (session and CSRF token checked), else
        ``Unauthenticated`` (401) or ``Forbidden`` (403)."""
        who = self._principal(request)
        if who.kind is not Kind.STAFF or "manager" not in who.roles:
            raise Forbidden("只有大厅管理员可以管理设备和人员", {"role": ["需要管理员"]})
        return who
