"""The site's queue configuration (policy, categories, windows, staff): seeded from the
``QUEUE:`` section, changed by managers as new versions, every version kept."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from services.common.clock import iso
from services.common.errors import Conflict, InvalidInput, NotFound
from services.common.privacy import site_salt
from services.common.store import Doc
from services.queue import schemas
from services.queue.settings import OPERATION_KEYS
from services.queue.store import CURRENT_CONFIG
from services.queue.usecases.base import QueueBase

SEEDED_BY = "config-file"


class Configuration(QueueBase):
    def seed(self) -> None:
        """Store the config file's section as the first version, or as a new version when
        the file changed since it was last applied (manager changes otherwise persist);
        settle the privacy salt (configured, else generated once per site and kept)."""
        loaded = dict(self.settings.site_config)
        digest = hashlib.sha256(
            json.dumps(loaded, sort_keys=True, default=str).encode()
        ).hexdigest()
        current = self.repo.config.get(CURRENT_CONFIG)
        if current is None or current.get("seed_digest") != digest:
            self._store_config(loaded, SEEDED_BY, None, seed_digest=digest)
        self.salt = site_salt(self.settings.privacy_salt, self.repo.config)

    def configure(
        self, config: Mapping[str, Any], by: str | None, expected_version: int | None = None
    ) -> dict[str, Any]:
        """Replace the site's queue configuration with a new version (manager only)."""
        args = self._args(
            schemas.ConfigureArgs, config=config, by=by, expected_version=expected_version
        )
        data = args["config"]
        if isinstance(data, Mapping):
            for key in OPERATION_KEYS:
                if key in data:
                    raise InvalidInput.field(key, "只能在配置文件的 QUEUE 段中设置")
        loaded = schemas.load_config(data)
        self._store_config(loaded, args["by"], args["expected_version"])
        return self.configuration()

    def configuration(self, version: int | None = None) -> dict[str, Any]:
        """The current configuration (or version ``version`` of it)."""
        args = self._args(schemas.VersionArgs, version=version)
        if args["version"] is not None:
            return self.config_history(args["version"])
        doc = self.repo.config.get(CURRENT_CONFIG)
        if doc is None:
            return {"config_version": 0, "config": {}, "changed_by": None, "updated_at": None}
        return {
            "config_version": doc["config_version"],
            "config": doc["config"],
            "changed_by": doc.get("changed_by"),
            "updated_at": doc.get("updated_at"),
        }

    def config_history(self, version: int) -> dict[str, Any]:
        doc = self.repo.config.get(f"v{version}")
        if doc is None:
            raise NotFound(f"没有第 {version} 版配置", {"version": ["不存在"]})
        return {k: doc[k] for k in ("config_version", "config", "changed_by", "created_at")}

    def _store_config(
        self, loaded: dict[str, Any], by: str, expected: int | None, seed_digest: str | None = None
    ) -> Doc:
        now = iso(self.clock())

        def change(doc: Doc | None) -> dict[str, Any]:
            assert doc is not None
            if expected is not None and doc["config_version"] != expected:
                rule = f"配置已被他人改为第 {doc['config_version']} 版，请刷新后再改"
                raise Conflict(rule, {"expected_version": [rule]})
            changes = {
                "config": loaded,
                "config_version": doc["config_version"] + 1,
                "changed_by": by,
                "updated_at": now,
            }
            if seed_digest is not None:
                changes["seed_digest"] = seed_digest
            return changes

        def create() -> Doc:
            return {
                "id": CURRENT_CONFIG,
                "site_code": self.site_code,
                "config": {},
                "config_version": 0,
                "seed_digest": None,
                "created_at": now,
                "updated_at": now,
            }

        doc = self.repo.modify(self.repo.config, CURRENT_CONFIG, change, create)
        assert doc is not None
        self.repo.insert_config_version(
            {
                "id": f"v{doc['config_version']}",
                "site_code": self.site_code,
                "config": loaded,
                "config_version": doc["config_version"],
                "changed_by": by,
                "created_at": now,
                "updated_at": now,
            }
        )
        return doc
