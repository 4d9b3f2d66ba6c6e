"""What the gateway accepts: staff accounts from the operator, sign-in and pairing from
pages and devices. Unknown fields are refused (``Arguments``)."""

from __future__ import annotations

from marshmallow import fields

from services.common.validation import Arguments, identifier, integer, one_of, text

DEVICE_ROLES = ("kiosk", "board", "pad")


class StaffSchema(Arguments):
    id = identifier(64, required=True)
    name = text(50, required=True)
    roles = fields.List(fields.String(), required=True)
    windows = fields.List(text(20), load_default=list)
    password = text(200, required=True)


class LoginSchema(Arguments):
    staff_id = identifier(64, required=True)
    password = text(200, required=True)
    window = text(20, load_default=None, allow_none=True)


class PasswordSchema(Arguments):
    staff_id = identifier(64, required=True)
    password = text(200, required=True)


class PairingSchema(Arguments):
    role = fields.String(required=True, validate=one_of(DEVICE_ROLES))
    window = text(20, load_default=None, allow_none=True)


class PairSchema(Arguments):
    code = text(8, pattern=r"^[0-9]{8}\Z", rule="应为 8 位数字", required=True)
    name = text(50, required=True)


class BridgeSchema(Arguments):
    args = fields.List(fields.Raw(), load_default=list)
    kwargs = fields.Dict(keys=fields.String(), load_default=dict)


class DeviceSchema(Arguments):
    device_id = identifier(64, required=True)


class AuditQuerySchema(Arguments):
    limit = integer(1, 1000, load_default=100)
