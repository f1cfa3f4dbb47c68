#!/usr/bin/env bash
# The one check script: sets up .venv (Python 3.11), installs litetrain with its test extras, lints, checks the
# structure, runs the tests.
# CI (.ci/run) and the README's Quick start run exactly this. Extra arguments go to pytest (instead of the default
# -m "not zoo").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[test]"
.venv/bin/ruff check src tests benchmarks
# Functions in src/ at most 80 lines, no import cycle among litetrain modules (docstring of the script: the rules).
.venv/bin/python dev/check_structure.py
# The HTML report's browser test drives Debian's headless Chromium; install it on a bare (root) machine.
if { ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; } \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# The arm64 runtime (ARM64 kernels under qemu-user; tests/runtime/test_arm64.py) from Debian and PyPI into
# ~/.cache/litetrain, without touching the host; its tests skip where it cannot be installed (no apt, no network).
if [ ! -x "${LITETRAIN_CACHE:-$HOME/.cache/litetrain}/arm64/python" ] && command -v apt-get >/dev/null \
    && command -v dpkg >/dev/null; then
  .venv/bin/litetrain runtimes install arm64 >/dev/null || echo "arm64 runtime not installed; its tests skip" >&2
fi
# The wasm runtime (LiteRT.js in Node and in headless Chromium; tests/runtime/test_wasm.py, test_browser_wasm.py)
# with npm, the same way; a bare (root) machine gets Debian's npm first.
if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >/dev/null \
    || echo "npm not installed; the wasm runtime's tests skip" >&2
fi
if [ ! -f "${LITETRAIN_CACHE:-$HOME/.cache/litetrain}/wasm/node_modules/@litertjs/core/package.json" ] \
    && command -v npm >/dev/null; then
  .venv/bin/litetrain runtimes install wasm >/dev/null || echo "wasm runtime not installed; its tests skip" >&2
fi
# Without arguments: the suite without the model zoo and the slow federation/quantization modules; .ci/run runs
# those (-m "zoo or slow") after it.
if [ "$#" -eq 0 ]; then
  set -- -m "not zoo and not slow"
fi
.venv/bin/python -m pytest -q --durations=15 "$@"  # the 15 slowest tests, to keep the suite inside its time
