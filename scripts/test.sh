#!/usr/bin/env bash
# Set up (as root on Debian) and run the whole test suite: lint, types, unit, service, system.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --test
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> the pages' scripts parse"
for script in services/gateway/web/*.js; do node --check "$script"; done
echo "==> mypy"
.venv/bin/mypy
# Three runs: service tests patch the process with eventlet (Nameko containers in-process),
# which unit and system tests must not inherit.
for suite in unit service system; do
  echo "==> pytest tests/$suite"
  .venv/bin/pytest "tests/$suite" "$@"
done
