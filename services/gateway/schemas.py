"""What the gateway accepts: staff accounts from the operator, sign-in and pairing from
pages and devices. Unknown fields are refused (``Arguments``)."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validates_schema

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


class KioskSchema(Arguments):
    """A kiosk's request: a walk-in ticket of ``category`` (optionally the green channel's
    ``priority`` and a ``phone`` for an SMS), or the check-in of a ``booking``. The queue
    validates the values; this checks the shape."""

    category = text(8, load_default=None, allow_none=True)
    priority = text(20, load_default=None, allow_none=True)
    phone = text(32, load_default=None, allow_none=True)
    booking = text(64, load_default=None, allow_none=True)

    @validates_schema
    def one_request(self, data: dict[str, object], **_: object) -> None:
        if bool(data.get("category")) == bool(data.get("booking")):
            raise ValidationError("请选择业务类别，或输入预约码签到", "category")


class CitizenRatingSchema(Arguments):
    """A citizen's rating from the phone (``/m/r/<token>``): only what a citizen chooses.
    What is rated comes from the link, the channel is ``qr_code``: a body naming a
    service, a window, a clerk or a channel is refused, not obeyed."""

    level = text(30, required=True)
    tags = fields.List(text(20), load_default=list)
    phone = text(32, load_default=None, allow_none=True)
    request_id = identifier(64, required=True)
    text = text(500, load_default=None, allow_none=True, multiline=True)  # last: a field name


class ProgressQuerySchema(Arguments):
    """``/m/a``: the 办件编号 and the last six characters of the applicant's ID number;
    matters checks their form and the pair."""

    number = text(40, required=True)
    id_suffix = text(6, required=True)


class ReceiptLinkSchema(Arguments):
    application_id = identifier(80, required=True)
