"""Site configuration read from Nameko's YAML config and validated before anything starts.

Keys (each may use ``${ENV:default}``; use ``!raw_env_var`` for codes so YAML keeps them
as text)::

    AMQP_URI: pyamqp://user:pass@host:5672/hall-421302    # this site's own broker/vhost
    WEB_SERVER_ADDRESS: 127.0.0.1:8100                      # this service's HTTP port
    SITE: {code: "421302", tier: county, name: 曾都区政务服务中心, upstream: "000000"}
    UPSTREAM_AMQP_URI: pyamqp://…/hall-000000              # required when SITE.upstream is set
    STORE_URI: sqlite:////var/lib/hall/421302               # or mongodb://host/hall_421302
    CALENDAR_OVERRIDE: /etc/hall/calendar.yaml              # years chinesecalendar lacks
    ACCESS_KEY_FILE: /etc/hall/secrets/421302.access        # signs and verifies identities
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from services.common.errors import InvalidInput
from services.common.identity import KeyFile, KeyFileError
from services.common.site import SiteIdentity, parse_site_identity
from services.common.store import validate_store_uri

_AMQP_SCHEMES = ("amqp", "pyamqp", "amqps")


class ConfigError(InvalidInput):
    """A configuration value breaks a rule; the service refuses to start."""


@dataclass(frozen=True)
class SiteConfig:
    identity: SiteIdentity
    amqp_uri: str
    store_uri: str
    upstream_amqp_uri: str | None
    calendar_override: str | None
    access: KeyFile  # the site's access keys (docs/security.md)
    section: Mapping[str, Any]  # the service's own section (e.g. RATING), may be empty


def load_site_config(config: Mapping[str, Any], service: str) -> SiteConfig:
    """Validate the shared keys and return them typed; raises ``ConfigError``."""
    try:
        site = config.get("SITE")
        if not isinstance(site, Mapping):
            raise InvalidInput.field("SITE", "缺少站点配置（code、tier、name、upstream）")
        identity = parse_site_identity(
            site.get("code"), site.get("tier"), site.get("name"), site.get("upstream")
        )
        amqp_uri = _amqp_uri(config.get("AMQP_URI"), "AMQP_URI")
        upstream_uri = _optional(config.get("UPSTREAM_AMQP_URI"))
        if identity.upstream and upstream_uri is None:
            raise InvalidInput.field(
                "UPSTREAM_AMQP_URI", "配置了上级站点时必须给出上级消息代理地址"
            )
        if upstream_uri is not None:
            _amqp_uri(upstream_uri, "UPSTREAM_AMQP_URI")
        store_uri = str(config.get("STORE_URI") or "")
        validate_store_uri(store_uri)
        access = _access_keys(config.get("ACCESS_KEY_FILE"))
        section = config.get(service.upper()) or {}
        if not isinstance(section, Mapping):
            raise InvalidInput.field(service.upper(), "服务配置段必须是映射")
    except InvalidInput as exc:
        raise ConfigError(exc.message, exc.fields) from None
    return SiteConfig(
        identity=identity,
        amqp_uri=amqp_uri,
        store_uri=store_uri,
        upstream_amqp_uri=upstream_uri,
        calendar_override=_optional(config.get("CALENDAR_OVERRIDE")),
        access=access,
        section=section,
    )


def _access_keys(value: object) -> KeyFile:
    path = _optional(value)
    if path is None:
        raise InvalidInput.field("ACCESS_KEY_FILE", "缺少访问密钥文件（由 hallctl 建站时生成）")
    try:
        return KeyFile(path)
    except KeyFileError as exc:
        raise InvalidInput.field("ACCESS_KEY_FILE", exc.message) from None


def _optional(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _amqp_uri(value: object, key: str) -> str:
    text = _optional(value)
    if text is None:
        raise InvalidInput.field(key, "缺少消息代理地址")
    parts = urlsplit(text)
    if parts.scheme not in _AMQP_SCHEMES or not parts.hostname:
        raise InvalidInput.field(
            key, f"消息代理地址须形如 pyamqp://用户:密码@主机:5672/vhost，实际为 {mask_uri(text)}"
        )
    return text


def mask_uri(uri: str) -> str:
    """The URI with its password replaced, for logs and error messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
