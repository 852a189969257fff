#!/usr/bin/env bash
# One-command set-up: a virtual environment in .venv with ivl-kit and everything its tests need.
# The CPU build of torch is installed first so that no multi-GB CUDA build is pulled in.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[all,dev]"
echo "ivl-kit installed in .venv: activate with '. .venv/bin/activate'"
