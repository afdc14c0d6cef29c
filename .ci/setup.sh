#!/usr/bin/env bash
# Set up a fresh clone: a local virtualenv with everything installed, and a project-local DAGSTER_HOME.
# torch==2.13.0 goes first (the CPU build), so nothing later pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test]"
mkdir -p .dagster_home
grep -qs python_log_level .dagster_home/dagster.yaml || cat > .dagster_home/dagster.yaml <<'YAML'
# Project-local Dagster instance: run history and asset status in embedded SQLite under .dagster_home/
telemetry:
  enabled: false
nux:
  enabled: false
# The console of a CLI run shows INFO and above (progress, reuse, warnings); DEBUG adds Dagster's step events.
python_logs:
  python_log_level: INFO
YAML
echo "setup done: .venv ready, DAGSTER_HOME=$(pwd)/.dagster_home"
