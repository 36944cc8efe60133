#!/usr/bin/env bash
# The main job, offline: the committed MetaWorld π0 (checkpoints/pi0_metaworld_mt2, trained here with
# scripts/train_metaworld.sh) converted with `none`, `compact` and `fastv` (25 % of visual tokens), each run
# by the real `lerobot-eval` on LeRobot's MetaWorld sim on held-out seeds; then one table of real success
# rates beside kept tokens, FLOPs and latency. About 3-4 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 MUJOCO_GL=${MUJOCO_GL:-egl}
out=${DEMO_OUT:-outputs/demo}
episodes=${DEMO_EPISODES:-2}  # per task
tasks=button-press-topdown-v3,coffee-button-v3
rm -rf "$out"
runs=()
for spec in "none" "compact" "fastv --pruning.keep_ratio=0.25 --pruning.compact=true"; do
  name=${spec%% *}
  # shellcheck disable=SC2086
  lerobot-prune convert --base=checkpoints/pi0_metaworld_mt2 --out="$out/ckpt_$name" --pruning.type=$spec
  echo "[demo] lerobot-eval on MetaWorld ($tasks) with $name, $episodes episodes per task from seed 10000"
  lerobot-eval --policy.path="$out/ckpt_$name" --env.type=metaworld --env.task=$tasks \
    --eval.n_episodes="$episodes" --eval.batch_size=1 --eval.use_async_envs=false --seed=10000 \
    --policy.device=cpu --output_dir="$out/eval_$name" > "$out/eval_$name.log" 2>&1 || { tail -30 "$out/eval_$name.log"; exit 1; }
  runs+=("$out/eval_$name")
done
echo
echo "Trained π0 (1.2 M parameters, 256 visual tokens per camera) on MetaWorld, seeds never used in training:"
lerobot-prune report --runs="[$(IFS=,; echo "${runs[*]}")]"
