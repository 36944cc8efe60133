#!/usr/bin/env bash
# Real checkpoint, real sim: LeRobot's π0 fine-tuned on LIBERO, pruned with FastV, on the four LIBERO
# suites (50 episodes per task). Needs Hub access (weights, the gated PaliGemma tokenizer: `hf auth login`,
# and LIBERO's assets on first use) and `pip install "lerobot[libero]>=0.6.1,<0.7"`; see README "Simulators".
# Usage: bash examples/convert_and_eval_libero.sh [keep_ratio] [n_episodes]
set -euo pipefail
keep=${1:-0.25}
episodes=${2:-50}
export MUJOCO_GL=${MUJOCO_GL:-egl}
# hf-libero prompts on stdin at first import unless $LIBERO_CONFIG_PATH/config.yaml exists.
export LIBERO_CONFIG_PATH=${LIBERO_CONFIG_PATH:-$PWD/outputs/libero_config}
if [ ! -f "$LIBERO_CONFIG_PATH/config.yaml" ]; then
  mkdir -p "$LIBERO_CONFIG_PATH"
  root=$(python -c "import importlib.util, os; print(os.path.dirname(importlib.util.find_spec('libero.libero').origin))")
  printf '%s\n' "benchmark_root: $root" "bddl_files: $root/bddl_files" "init_states: $root/init_files" \
    "datasets: $root/../datasets" "assets: $root/assets" > "$LIBERO_CONFIG_PATH/config.yaml"
fi
ckpt="outputs/pi0_libero_fastv_$keep"
lerobot-prune convert --base=lerobot/pi0_libero_finetuned --out="$ckpt" \
  --pruning.type=fastv --pruning.keep_ratio="$keep" --pruning.compact=true
runs=()
for suite in libero_spatial libero_object libero_goal libero_10; do
  lerobot-eval --policy.path="$ckpt" --env.type=libero --env.task="$suite" \
    --eval.n_episodes="$episodes" --eval.batch_size=1 --output_dir="outputs/eval/pi0_fastv_${keep}_$suite"
  runs+=("outputs/eval/pi0_fastv_${keep}_$suite")
done
lerobot-prune report --runs="[$(IFS=,; echo "${runs[*]}")]"
