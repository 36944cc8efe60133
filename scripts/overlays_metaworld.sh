#!/usr/bin/env bash
# Kept-token overlays of every strategy (25 % kept, compact) on the committed MetaWorld π0, over 6 frames of
# one scripted-expert episode per task from held-out seed 10000; composed into one PNG per task in
# benchmarks/results/metaworld_overlays (rows: strategies, columns: frames; pruned tokens darkened).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 MUJOCO_GL=${MUJOCO_GL:-egl}
ckpt=checkpoints/pi0_metaworld_mt2
tasks="[button-press-topdown-v3,coffee-button-v3]"
work=${OVERLAY_WORK:-outputs/overlays_metaworld}
vis=$work/data calib=${CALIB_ROOT:-outputs/metaworld_calib}
if [ ! -f "$vis/lerobot_prune_record.json" ]; then
  lerobot-prune record-expert --root="$vis" --tasks="$tasks" --episodes_per_task=1 --seed_start=10000 \
    --repo_id=local/metaworld_vis --overwrite=true
fi
if [ ! -f "$calib/lerobot_prune_record.json" ]; then  # TIES calibrates on training episodes (seeds 0..4)
  lerobot-prune record-expert --root="$calib" --tasks="$tasks" --episodes_per_task=5 --seed_start=0 \
    --repo_id=local/metaworld_mt2 --overwrite=true
fi
strategies=(none fastv sparsevlm vla_pruner ties adp divprune random dtp)
for s in "${strategies[@]}"; do
  case $s in
    none) flags=() ;;
    dtp) flags=(--pruning.layers="[1,2]" --pruning.tau=0.5) ;;  # 4 VLM layers: probe layers {4,6}/18 -> {1,2}
    *) flags=(--pruning.keep_ratio=0.25) ;;
  esac
  lerobot-prune convert --base="$ckpt" --out="$work/ckpt_$s" --pruning.type="$s" --pruning.compact=true \
    "${flags[@]}" --overwrite=true
  if [ "$s" = ties ]; then
    lerobot-prune calibrate --policy_path="$work/ckpt_$s" --dataset_repo_id=local/metaworld_mt2 \
      --dataset_root="$calib" --frames=100
  fi
  for episode in 0 1; do
    lerobot-prune visualize --policy_path="$work/ckpt_$s" --dataset_repo_id=local/metaworld_vis \
      --dataset_root="$vis" --episode=$episode --frames=6 --out="$work/$s/episode_$episode"
  done
done
python scripts/compose_overlays.py --work="$work" --strategies="${strategies[*]}" --dataset_root="$vis" \
  --out=benchmarks/results/metaworld_overlays
