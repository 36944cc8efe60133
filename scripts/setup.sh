#!/usr/bin/env bash
# Creates ./.venv (Python 3.12, picked by pyenv from .python-version when pyenv exists) and installs this
# project with LeRobot's pi extras, the PushT/ALOHA/MetaWorld sims, Ray (sweep --backend=ray) and the test
# tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  if command -v pyenv >/dev/null 2>&1 && pyenv which python >/dev/null 2>&1; then py=$(pyenv which python); else py=python3.12; fi
  echo "[setup] creating .venv with $("$py" --version)"
  "$py" -m venv .venv
fi
. .venv/bin/activate
python -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else "LeRobot 0.6 needs Python >= 3.12, got " + sys.version)'
if ! python -c "import lerobot_prune, lerobot_policy_prune, gym_pusht, gym_aloha, metaworld, scservo_sdk, grpc, pytest, scipy, matplotlib, ray" >/dev/null 2>&1; then
  echo "[setup] installing lerobot_policy_prune and LeRobot 0.6 (first run: a few minutes, ~6 GB)"
  python -m pip install -q --upgrade pip
  python -m pip install -q -e ".[sims,robots,test,ray]"
fi
