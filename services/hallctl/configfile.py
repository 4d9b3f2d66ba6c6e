"""Reading a service's config as ``nameko run`` does, and showing it with secrets masked."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from services.common.config import ConfigError, load_site_config, mask_uri
from services.hallctl.sitedir import OpsError, SiteDir

SECRET_KEY = re.compile(r"pass|secret|key|salt|token|credential", re.IGNORECASE)
MASK = "***"
SECRET_PATHS = {("SYNC", "children")}  # child site code → its sync keys


class _NamekoLoader(yaml.SafeLoader):
    """YAML as ``nameko run`` reads it: ``${ENV:default}`` and ``!raw_env_var``."""

    installed = False


def _install_env_constructors() -> None:
    # Nameko's own constructors, imported on first use: nameko is slow to import and the
    # command line should not pay for it before it reads a config.
    from nameko.cli.main import IMPLICIT_ENV_VAR_MATCHER, env_var_constructor

    _NamekoLoader.add_constructor("!env_var", env_var_constructor)
    _NamekoLoader.add_constructor("!raw_env_var", partial(env_var_constructor, raw=True))
    _NamekoLoader.add_implicit_resolver("!env_var", IMPLICIT_ENV_VAR_MATCHER, None)
    _NamekoLoader.installed = True


def load_config(path: Path) -> dict[str, Any]:
    """The mapping ``nameko run --config path`` would get, environment applied."""
    if not _NamekoLoader.installed:
        _install_env_constructors()
    with path.open(encoding="utf-8") as stream:
        loaded = yaml.load(stream, Loader=_NamekoLoader)  # noqa: S506  (a SafeLoader subclass)
    if not isinstance(loaded, dict):
        raise OpsError(f"{path} 不是 YAML 映射")
    return loaded


def mask_secrets(value: Any, secret: bool = False, path: tuple[str, ...] = ()) -> Any:
    """A copy with URIs' passwords and every value under a secret-looking key masked."""
    if isinstance(value, Mapping):
        masked = {}
        for k, v in value.items():
            inner = (*path, str(k))
            hidden = secret or bool(SECRET_KEY.search(str(k))) or inner in SECRET_PATHS
            masked[k] = mask_secrets(v, hidden, inner)
        return masked
    if isinstance(value, list):
        return [mask_secrets(v, secret, path) for v in value]
    if secret and value not in (None, ""):
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_uri(value)
    return value


def config_problem(config: Mapping[str, Any], service: str) -> str | None:
    """Why the service would refuse to start (broker not contacted), or None."""
    try:
        load_site_config(config, service)
    except ConfigError as exc:
        return str(exc)
    return None


def show_config(site: SiteDir, service: str) -> str:
    """The effective config of one service as YAML, secrets masked, plus its verdict."""
    config = load_config(site.require(service))
    text = yaml.safe_dump(mask_secrets(config), allow_unicode=True, sort_keys=False)
    problem = config_problem(config, service)
    verdict = f"# ✗ 配置错误：{problem}" if problem else "# ✓ 配置检查通过（未连接消息代理）"
    return f"# {site.config_path(service)}\n{text}{verdict}\n"


def web_port(config: Mapping[str, Any]) -> int:
    address = str(config.get("WEB_SERVER_ADDRESS") or "0.0.0.0:8000")
    return int(address.rsplit(":", 1)[1])
