#!/usr/bin/env bash
# The one check script: sets up .venv (Python 3.11), installs litetrain with its test extras, lints, runs the tests.
# CI (.ci/run) and the README's Quick start run exactly this. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest -q "$@"
