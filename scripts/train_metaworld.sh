#!/usr/bin/env bash
# Reproduces the committed MetaWorld policies from nothing, offline, on the CPU:
#   POLICY=pi0 (default)  -> checkpoints/pi0_metaworld_mt2     (256 visual tokens per camera)
#   POLICY=smolvla        -> checkpoints/smolvla_metaworld_mt2 (64 visual tokens per camera, 4x4 patches each)
#   1. scripted-expert demonstrations of two MetaWorld tasks (train seeds 0..99 per task) into a LeRobotDataset,
#      shared by both policies,
#   2. a small random policy (init-tiny at the sizes below) as a pruned_<type> folder,
#   3. LeRobot's own lerobot-train on it (fixed seed), resumable: run the script again after an interruption,
#   4. the last checkpoint copied into checkpoints/ (scripts/ship_checkpoint.py, the command its card names).
# Seeds: training 0..99, checkpoint selection (validation) 5000.., reported evaluation 10000.. (never trained on).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 WANDB_MODE=offline MUJOCO_GL=${MUJOCO_GL:-egl}
policy=${POLICY:-pi0}
work=${TRAIN_WORK:-outputs/metaworld_$policy}
data=${TRAIN_DATA:-outputs/metaworld_data}
steps=${TRAIN_STEPS:-6000}
tasks="[button-press-topdown-v3,coffee-button-v3]"
case $policy in
  pi0) extra=()
       arch='{width: 128, mlp_dim: 256, expert_width: 64, expert_mlp_dim: 128, vision_width: 64, vision_depth: 2,
         vision_heads: 4, vision_mlp_dim: 128}' ;;
  # SmolVLA trains only its expert on a frozen vision encoder by default: from scratch everything must learn.
  smolvla) extra=(--policy.freeze_vision_encoder=false --policy.train_expert_only=false)
       arch='{width: 128, mlp_dim: 256, num_heads: 8, head_dim: 16, vision_width: 64, vision_depth: 2,
         vision_heads: 4, vision_mlp_dim: 128}' ;;
  *) echo "POLICY=$policy: expected pi0 or smolvla"; exit 2 ;;
esac

if [ ! -f "$data/lerobot_prune_record.json" ]; then
  lerobot-prune record-expert --root="$data" --tasks="$tasks" --episodes_per_task=100 --seed_start=0 \
    --repo_id=local/metaworld_mt2 --overwrite=true
fi
last="$work/train/checkpoints/last/pretrained_model/train_config.json"
if [ -f "$last" ]; then
  lerobot-train --resume=true --config_path="$last"
else
  lerobot-prune init-tiny --policy_type="$policy" --env_type=metaworld --arch="$arch" --chunk_size=10 --n_action_steps=10 --seed=0 \
    --out="$work/init"
  lerobot-prune convert --base="$work/init" --out="$work/init_pruned" --pruning.type=none --overwrite=true
  # From scratch: π0's fine-tuning learning rate (2.5e-5) is far too low; cosine decay over exactly `steps`.
  lerobot-train --policy.path="$work/init_pruned" --dataset.repo_id=local/metaworld_mt2 --dataset.root="$data" \
    --dataset.video_backend=pyav --batch_size=8 --steps="$steps" --seed=1000 --num_workers=1 \
    --policy.optimizer_lr=5e-4 --policy.scheduler_warmup_steps=200 --policy.scheduler_decay_steps="$steps" \
    --policy.scheduler_decay_lr=2.5e-5 --log_freq=100 --save_freq=1000 --policy.device=cpu \
    --policy.push_to_hub=false --wandb.enable=false --output_dir="$work/train" "${extra[@]}"
fi
