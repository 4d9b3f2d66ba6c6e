#!/usr/bin/env bash
# Install one hall site on a Debian 12 machine without Docker (a village or town PC), as root:
# Debian's rabbitmq-server, a venv under /opt/hall, the site's files under /var/lib/hall,
# and the systemd units hall-{matters,queue,rating,sync}.service grouped by hall.target.
#
#   deploy/systemd/install.sh --code 421302101202 --name 二村便民服务站 \
#       --upstream 421302101 --upstream-broker 10.20.0.5:5672 [--secrets DIR] [--bind 0.0.0.0] \
#       [--base-port 8100] [--broker 127.0.0.1:5672] [--store URI] [--prefix hall-]
#
# --secrets DIR: the files `hallctl add-village` wrote for this site on the parent's machine
# (<code>.broker-password, <code>.sync-key, <code>.privacy-salt); without it new ones
# are generated and must be registered upstream (docs/operations.md, “增加村站点”).
# Idempotent: running it again keeps data and secrets, refreshes code, configs and units.
# The site options are remembered in /var/lib/hall/<code>/site.json (by `hallctl site-init`):
# a re-run needs no option at all (the code comes from /etc/hall/hall.env); an option given
# again with another value replaces the remembered one, and the change is printed.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/../.." && pwd)"
PREFIX=/opt/hall
DATA=/var/lib/hall
CODE="" SECRETS="" KEEP_GUEST=0
# Options for `hallctl site-init`, passed on only when given (site.json keeps the rest).
INIT=()
while [ $# -gt 0 ]; do
  case "$1" in
    --code) CODE="$2"; shift 2 ;;
    --name|--upstream|--upstream-broker|--bind|--base-port|--broker|--store|--prefix)
      [ $# -ge 2 ] || { echo "$1 需要一个值" >&2; exit 2; }
      INIT+=("$1" "$2"); shift 2 ;;
    --secrets) SECRETS="$2"; shift 2 ;;
    --keep-guest) KEEP_GUEST=1; shift ;;
    *) echo "未知参数：$1" >&2; exit 2 ;;
  esac
done
if [ -z "$CODE" ] && [ -f /etc/hall/hall.env ]; then
  CODE="$(sed -n 's/^HALL_SITE=//p' /etc/hall/hall.env)"   # a re-run: the installed site
fi
[ -n "$CODE" ] || { echo "需要 --code（第一次安装还需要 --name）" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "请以 root 运行" >&2; exit 2; }

echo "==> apt-get install python3-venv rabbitmq-server sqlite3"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv rabbitmq-server sqlite3
systemctl enable --now rabbitmq-server
rabbitmqctl -q await_startup --timeout 120

echo "==> user hall, ${PREFIX}, ${DATA}"
id hall >/dev/null 2>&1 || useradd --system --home-dir "$DATA" --shell /usr/sbin/nologin hall
install -d -m 755 "$PREFIX" /etc/hall
install -d -m 750 -o hall -g hall "$DATA"
install -d -m 700 -o hall -g hall "$DATA/secrets"

echo "==> ${PREFIX}/venv (the project from ${SRC})"
rm -rf "$PREFIX/src"
mkdir -p "$PREFIX/src"
cp -a "$SRC/pyproject.toml" "$SRC/README.md" "$SRC/services" "$SRC/deploy" "$SRC/docs" "$PREFIX/src/"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install -q --disable-pip-version-check "$PREFIX/src"

if [ -n "$SECRETS" ]; then
  echo "==> secrets from ${SECRETS}"
  for f in broker-password sync-key privacy-salt; do
    [ -f "$SECRETS/$CODE.$f" ] && install -m 600 -o hall -g hall "$SECRETS/$CODE.$f" "$DATA/secrets/"
  done
fi

echo "==> site files ${DATA}/${CODE}"
args=(site-init --data-dir "$DATA" --code "$CODE" "${INIT[@]}")
"$PREFIX/venv/bin/python" -m services.hallctl.cli "${args[@]}"
chown -R hall:hall "$DATA"

echo "==> RabbitMQ: vhost, user and permissions of ${CODE}"
# via stdin: Debian's rabbitmqctl runs as the rabbitmq user, who cannot read the 600 file
rabbitmqctl -q import_definitions --format json < "$DATA/$CODE/rabbitmq/definitions.json"
if [ "$KEEP_GUEST" = 0 ] && rabbitmqctl -q list_users | grep -q '^guest\b'; then
  rabbitmqctl -q delete_user guest   # nothing uses it; it could only log in from localhost
fi

echo "==> systemd units"
cat > /etc/hall/hall.env <<ENV
# Read by hall-*.service. CALENDAR_OVERRIDE: holiday schedules for years chinesecalendar lacks.
HALL_SITE=${CODE}
CALENDAR_OVERRIDE=$( [ -f /etc/hall/calendar.yaml ] && echo /etc/hall/calendar.yaml )
ENV
install -m 644 "$SRC"/deploy/systemd/hall-*.service "$SRC/deploy/systemd/hall.target" /etc/systemd/system/
systemctl daemon-reload
systemctl enable hall.target hall-matters.service hall-queue.service hall-rating.service hall-sync.service
systemctl restart hall.target

echo "==> check"
for _ in $(seq 1 30); do
  if "$PREFIX/venv/bin/python" -m services.hallctl.cli check --data-dir "$DATA" --site "$CODE"; then
    exit 0
  fi
  sleep 4
done
echo "站点未就绪：journalctl -u 'hall-*' -n 50" >&2
exit 1
