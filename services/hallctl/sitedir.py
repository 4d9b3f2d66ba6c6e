"""A site's directory in a data directory, the layout every ``hallctl`` command uses::

<data>/<code>/config/<service>.yaml   the Nameko config of each service
<data>/<code>/data/                   SQLite files (one per service)
<data>/<code>/logs/<service>.log      stdout and stderr of the process
<data>/<code>/run/<service>.pid       the pid of a ``nameko run`` started by ``hallctl start``
<data>/secrets/                       the sites' secret files (:mod:`secretfiles`)
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from services.hallctl.topology import SERVICES


class OpsError(RuntimeError):
    """An operation that cannot be done, with a message for the operator (Chinese)."""


def default_data_dir() -> Path:
    return Path(os.environ.get("HALL_DATA_DIR") or os.environ.get("HALL_DEMO_DIR") or "demo-data")


def demo_data_dir() -> Path:
    """The default of ``hallctl demo`` and ``status``: the demo's directory."""
    return Path(os.environ.get("HALL_DEMO_DIR", "demo-data"))


def data_dir_of(args: argparse.Namespace) -> Path:
    """``--data-dir``, or the default, made absolute."""
    return (args.data_dir if args.data_dir is not None else default_data_dir()).resolve()


def site_args(cmd: argparse.ArgumentParser) -> None:
    """``--site`` and ``--data-dir``, for the commands that act on one site."""
    cmd.add_argument("--site", required=True, help="站点代码")
    cmd.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="站点目录的上级（默认 $HALL_DATA_DIR，或 $HALL_DEMO_DIR，或 demo-data）",
    )


def site_of(args: argparse.Namespace) -> SiteDir:
    """The site of ``--site`` in ``--data-dir``."""
    return SiteDir(data_dir_of(args), args.site)


@dataclass(frozen=True)
class SiteDir:
    data_dir: Path
    code: str

    @property
    def root(self) -> Path:
        return self.data_dir / self.code

    def config_path(self, service: str) -> Path:
        return self.root / "config" / f"{service}.yaml"

    def log_path(self, service: str) -> Path:
        return self.root / "logs" / f"{service}.log"

    def pid_path(self, service: str) -> Path:
        return self.root / "run" / f"{service}.pid"

    def services(self) -> list[str]:
        """The services that have a config file here, in the usual order."""
        return [s for s in SERVICES if self.config_path(s).exists()]

    def require(self, service: str) -> Path:
        chosen_services([service])
        path = self.config_path(service)
        if not path.exists():
            raise OpsError(f"站点 {self.code} 没有 {service} 的配置文件 {path}")
        return path


def sites_of(data_dir: Path) -> list[SiteDir]:
    """Every site directory of ``data_dir`` with a service config, upper tiers first."""
    if not data_dir.is_dir():
        return []
    found = (SiteDir(data_dir, entry.name) for entry in data_dir.iterdir() if entry.is_dir())
    return sorted((s for s in found if s.services()), key=lambda s: (len(s.code), s.code))


def chosen_services(names: list[str]) -> list[str] | None:
    """The services named on a command line, None for "all of them"; ``OpsError`` naming
    any unknown one."""
    unknown = [name for name in names if name not in SERVICES]
    if unknown:
        raise OpsError(f"未知服务 {'、'.join(unknown)}，应为 {'、'.join(SERVICES)} 之一")
    return list(names) or None
