#!/usr/bin/env bash
# The main job on a fresh Debian machine (as root): set up, then run the three-tier demo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/hallctl demo "$@"
