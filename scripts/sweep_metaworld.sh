#!/usr/bin/env bash
# The success table of every strategy on the committed MetaWorld π0 (checkpoints/pi0_metaworld_mt2; POLICY=smolvla
# for checkpoints/smolvla_metaworld_mt2, into benchmarks/results/metaworld_sweep_smolvla), with
# LeRobot's own eval on held-out seeds 10000..10024 per task (never used for training or checkpoint choice),
# the same seeds for every cell. Results land in benchmarks/results/metaworld_sweep (committed JSON per
# shard and cell, results.md/json, plots); the blind control in benchmarks/results/metaworld_blind.
#
# Each stage is one `lerobot-prune sweep` into the same folder, so finished cells and shards are never rerun:
# run the script again (on any machine with this checkout) and it continues where it stopped.
#   STAGES="base blind keep0.25" bash scripts/sweep_metaworld.sh    # a subset, in this order
#   SWEEP_ARGS="--backend=ray --torch_threads=1" bash scripts/sweep_metaworld.sh   # 2 shards at once on 2 cores
# Stages encoder<keep> (issue 15): FastV with the tower pruned too, at 50 / 25 / 12.5 % of the visual tokens kept:
# carry_over (the last call's kept patches enter the tower, full refresh every 4 calls) and in_encoder (half of
# each camera's patches dropped after tower layer 1; FastV keeps keep_ratio of the rest, so its cells are named
# keep_ratio 1.0 / 0.5 / 0.25). The post-encoder rows are the keep* stages' fastv cells.
# Cost on 2 CPU cores: ~15 s per solved episode, ~95 s per failed one (500 steps of MuJoCo rendering).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 WANDB_MODE=offline MUJOCO_GL=${MUJOCO_GL:-egl}
policy=${POLICY:-pi0}
ckpt=checkpoints/${policy}_metaworld_mt2
out=benchmarks/results/metaworld_sweep$([ "$policy" = pi0 ] || echo "_$policy")
tasks=button-press-topdown-v3,coffee-button-v3
calib=${CALIB_ROOT:-outputs/metaworld_calib}
stages=${STAGES:-base blind keep0.25 dtp keep0.125 keep0.5 ablations encoder0.25 encoder0.5 encoder0.125}
main=(--policy_path="$ckpt" --env.type=metaworld --env.task="$tasks" --eval.batch_size=1
  --eval.use_async_envs=false --seed=10000 --policy.device=cpu --shard_episodes=5
  --ties_calibration.dataset_repo_id=local/metaworld_mt2 --ties_calibration.dataset_root="$calib")
scored="[fastv,vla_pruner,ties,adp,random,divprune,sparsevlm]"

# TIES calibrates on training data: the expert episodes of training seeds 0..4 per task (the same episodes
# scripts/train_metaworld.sh records first), re-recorded here because outputs/ is not committed.
if [ ! -f "$calib/lerobot_prune_record.json" ]; then
  lerobot-prune record-expert --root="$calib" --tasks="[${tasks}]" --episodes_per_task=5 --seed_start=0 \
    --repo_id=local/metaworld_mt2 --overwrite=true
fi
# shellcheck disable=SC2086  # SWEEP_ARGS is a list of sweep options
sweep() { lerobot-prune sweep "${main[@]}" --out="$out" --eval.n_episodes=25 ${SWEEP_ARGS:-} "$@"; }
for stage in $stages; do
  echo "[sweep_metaworld] stage $stage"
  case $stage in
    base) sweep --strategies="[none,compact]" ;;
    blind) lerobot-prune sweep "${main[@]}" --out="${out/sweep/blind}" --eval.n_episodes=10 \
             --strategies="[none]" --settings='{none: {blind: true}}' ;;
    keep0.25) sweep --strategies="$scored" --keep_ratios="[0.25]" --compact="[true]" ;;
    # Both models have 4 VLM layers: DTP's probe layers {4, 6} of 18 become {1, 2}; the others' defaults fit.
    dtp) sweep --strategies="[dtp]" --dtp_taus="[0.5,0.8,1.22]" --compact="[true]" \
           --settings='{dtp: {layers: [1, 2]}}' ;;
    keep0.125) sweep --strategies="$scored" --keep_ratios="[0.125]" --compact="[true]" ;;
    keep0.5) sweep --strategies="$scored" --keep_ratios="[0.5]" --compact="[true]" ;;
    ablations) sweep --strategies="[fastv,vla_pruner,ties]" --keep_ratios="[0.25]" --compact="[false]"
               sweep --strategies="[vla_pruner_prefill_only,vla_pruner_action_only,vla_pruner_fusion,ties_topk,ties_bottomk,ties_middle,ties_uniform]" \
                 --keep_ratios="[0.25]" --compact="[true]" ;;
    encoder0.5 | encoder0.25 | encoder0.125)
      keep=${stage#encoder}
      sweep --strategies="[fastv]" --keep_ratios="[$keep]" --compact="[true]" --settings='{fastv: {encoder: carry_over}}'
      sweep --strategies="[fastv]" --keep_ratios="[$(python -c "print(2 * $keep)")]" --compact="[true]" \
        --settings='{fastv: {encoder: in_encoder, encoder_layer: 1, encoder_keep_ratio: 0.5}}' ;;
    *) echo "unknown stage $stage (base blind keep0.25 dtp keep0.125 keep0.5 ablations encoder0.25 encoder0.5 encoder0.125)"; exit 2 ;;
  esac
done
