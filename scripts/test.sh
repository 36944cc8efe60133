#!/usr/bin/env bash
# Sets up .venv if needed, then runs the whole test suite offline (no Hub, wandb offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 WANDB_MODE=offline
python -m pytest -q tests "$@"
