#!/usr/bin/env bash
# Sets up .venv if needed, then runs the whole test suite offline (no Hub, wandb offline).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 WANDB_MODE=offline
# ALOHA and MetaWorld render with MuJoCo offscreen; EGL works headless (osmesa needs libOSMesa).
export MUJOCO_GL=${MUJOCO_GL:-egl}
python -m pytest -q tests "$@"
# Pruning must pay in wall-clock time as its FLOPs say (mid-size π0 on the CPU, ~30 s).
python benchmarks/cpu_flop_check.py --out outputs/bench/cpu_flop_check.json
