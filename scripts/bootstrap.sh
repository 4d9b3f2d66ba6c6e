#!/usr/bin/env bash
# Prepare a Debian machine (run as root): Python 3.11 venv with the project, and a running
# RabbitMQ. Idempotent: safe to run again. Usage: scripts/bootstrap.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v rabbitmq-server >/dev/null || need_apt+=(rabbitmq-server)
# The call board's voice (espeak-ng's Mandarin WAVs) and the screens' Chinese glyphs.
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
fc-list 2>/dev/null | grep -qi "noto sans cjk" || need_apt+=(fonts-noto-cjk)
if [ "${1:-}" = "--test" ]; then
  # The screens are tested in Debian's Chromium (never a browser download); prometheus
  # and promtool check the shipped alert rules against a real Prometheus.
  command -v chromium >/dev/null || need_apt+=(chromium)
  command -v promtool >/dev/null || need_apt+=(prometheus)
  command -v node >/dev/null || need_apt+=(nodejs)  # only to check the pages' scripts parse
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

python3 - <<'PY'
import sys
if sys.version_info[:2] != (3, 11):
    sys.exit(f"需要 Python 3.11（nameko 2.14 与 eventlet 0.41 的组合），当前为 {sys.version.split()[0]}")
PY

if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "==> starting RabbitMQ"
  rabbitmq-server -detached
  rabbitmqctl -q await_startup --timeout 120
fi

# The tests make and drop a vhost per site: the management API does it in milliseconds,
# where each rabbitmqctl call starts an Erlang VM (about 0.8 s). Loopback only, now and
# after a broker restart (the config line).
if [ "${1:-}" = "--test" ] && ! rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1; then
  echo "==> RabbitMQ management API, on 127.0.0.1 (for the tests)"
  mkdir -p /etc/rabbitmq
  grep -qs '^management.tcp.ip' /etc/rabbitmq/rabbitmq.conf \
    || echo 'management.tcp.ip = 127.0.0.1' >> /etc/rabbitmq/rabbitmq.conf
  rabbitmqctl -q eval \
    'application:set_env(rabbitmq_management, tcp_config, [{ip, "127.0.0.1"}, {port, 15672}]).' \
    >/dev/null
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  python3 -m venv .venv
fi
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
echo "==> pip install -e .${extras}"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"
