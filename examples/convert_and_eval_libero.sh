#!/usr/bin/env bash
# Real checkpoint, real sim: needs Hub access (weights + the gated PaliGemma tokenizer) and
# `pip install "lerobot[libero]"` with LIBERO's assets.
set -euo pipefail
keep=${1:-0.25}
lerobot-prune convert --base=lerobot/pi0_libero_finetuned --out="outputs/pi0_libero_fastv_$keep" \
  --pruning.type=fastv --pruning.keep_ratio="$keep" --pruning.compact=true
for suite in libero_spatial libero_object libero_goal libero_10; do
  lerobot-eval --policy.path="outputs/pi0_libero_fastv_$keep" --env.type=libero --env.task="$suite" \
    --eval.n_episodes=50 --eval.batch_size=1 --output_dir="outputs/eval/pi0_fastv_${keep}_$suite"
done
