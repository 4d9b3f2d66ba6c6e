"""systemd: a unit per service, and the target that groups a site's four."""

from __future__ import annotations

from services.hallctl.topology import SERVICES
from tools.deploy_render.common import GRACE_S, HEADER

TITLES = {
    "matters": "事项目录与办件 (matters)",
    "queue": "取号叫号与预约 (queue)",
    "rating": "好差评与差评整改 (rating)",
    "sync": "上下级数据同步 (sync)",
    "gateway": "人员与设备接入网关 (gateway)",
}


def systemd_unit(service: str) -> str:
    return f"""# {HEADER}
[Unit]
Description=政务服务大厅 {TITLES[service]}
Documentation=file:///opt/hall/src/docs/operations.md
After=network-online.target rabbitmq-server.service
Wants=network-online.target rabbitmq-server.service
PartOf=hall.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=hall
Group=hall
EnvironmentFile=/etc/hall/hall.env
Environment=PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore::Warning:nameko.cli.commands
WorkingDirectory=/var/lib/hall
ExecStart=/opt/hall/venv/bin/nameko run \\
    --config /var/lib/hall/${{HALL_SITE}}/config/{service}.yaml services.{service}.service
# SIGTERM: Nameko finishes in-flight workers; SIGKILL only after the grace period.
KillSignal=SIGTERM
KillMode=mixed
TimeoutStopSec={GRACE_S}
Restart=on-failure
RestartSec=5
# Board streams and long-polls hold sockets open: a cap per process (QUEUE.max_streams)
# answers 503 beyond it, well below this limit, so the accept loop never runs out of files.
LimitNOFILE=65536
# Stores hold personal data: files 0600 in 0700 directories.
UMask=0077
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
ReadWritePaths=/var/lib/hall

[Install]
WantedBy=hall.target
"""


def systemd_target() -> str:
    units = " ".join(f"hall-{s}.service" for s in SERVICES)
    return f"""# {HEADER}
[Unit]
Description=政务服务大厅站点（四个服务）
Wants={units}
After=rabbitmq-server.service

[Install]
WantedBy=multi-user.target
"""
