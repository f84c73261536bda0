#!/usr/bin/env bash
# The GPU check (issue 27, point 4): see bench/gpu_check.py. Uses the project's .venv when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
exec "$PY" bench/gpu_check.py "$@"
