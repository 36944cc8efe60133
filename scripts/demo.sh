#!/usr/bin/env bash
# The main job, offline: a tiny random π0 made with `lerobot-prune init-tiny`, converted to pruned_pi0
# with `none`, `compact` and `fastv` (25 % of visual tokens), each evaluated by the real `lerobot-eval`
# on LeRobot's PushT sim; then one comparison table (kept tokens, FLOPs, latency, success).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1
out=${DEMO_OUT:-outputs/demo}
episodes=${DEMO_EPISODES:-4}
rm -rf "$out"
lerobot-prune init-tiny --out="$out/pi0_tiny" --empty_cameras=1
runs=()
for spec in "none" "compact" "fastv --pruning.keep_ratio=0.25 --pruning.compact=true"; do
  name=${spec%% *}
  # shellcheck disable=SC2086
  lerobot-prune convert --base="$out/pi0_tiny" --out="$out/ckpt_$name" --pruning.type=$spec
  echo "[demo] lerobot-eval on PushT with $name ($episodes episodes)"
  lerobot-eval --policy.path="$out/ckpt_$name" --env.type=pusht --env.episode_length=50 \
    --eval.n_episodes="$episodes" --eval.batch_size=2 --eval.use_async_envs=false --policy.device=cpu \
    --output_dir="$out/eval_$name" > "$out/eval_$name.log" 2>&1 || { tail -30 "$out/eval_$name.log"; exit 1; }
  runs+=("$out/eval_$name")
done
echo
echo "Tiny random π0 (success is ~0 by construction; the point is the accounting) on PushT:"
lerobot-prune report --runs="[$(IFS=,; echo "${runs[*]}")]"
