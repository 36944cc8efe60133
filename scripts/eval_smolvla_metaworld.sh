#!/usr/bin/env bash
# SmolVLA on MetaWorld (checkpoints/smolvla_metaworld_mt2): unpruned, and FastV after the vision encoder vs
# the two encoder modes (issue 15), each with LeRobot's own lerobot-eval on the held-out seeds 10000..10024 per
# task (the same episodes as the π0 sweep's cells). Raw eval_info.json copies: benchmarks/results/metaworld_smolvla.
#   bash scripts/eval_smolvla_metaworld.sh     # ~8 min per cell on 2 CPU cores when the policy succeeds
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_HUB_OFFLINE=1 WANDB_MODE=offline MUJOCO_GL=${MUJOCO_GL:-egl}
ckpt=checkpoints/smolvla_metaworld_mt2
results=benchmarks/results/metaworld_smolvla
mkdir -p "$results"
run() {
  name=$1; shift
  if [ "$name" = none ]; then path=$ckpt; else
    path=outputs/smolvla_cells/$name
    lerobot-prune convert --base="$ckpt" --out="$path" --overwrite=true --pruning.compact=true "$@"
  fi
  lerobot-eval --policy.path="$path" --env.type=metaworld --env.task=button-press-topdown-v3,coffee-button-v3 \
    --eval.n_episodes=25 --eval.batch_size=1 --eval.use_async_envs=false --seed=10000 --policy.device=cpu \
    --output_dir="outputs/eval/smolvla_$name"
  python -c "import json,sys; d=json.load(open(sys.argv[1])); d['overall'].pop('video_paths',None); [g.pop('video_paths',None) for g in d.get('per_group',{}).values()]; json.dump(d,open(sys.argv[2],'w'),indent=2)" \
    "outputs/eval/smolvla_$name/eval_info.json" "$results/eval_${name}_seed10000.json"
  cp "outputs/eval/smolvla_$name/pruning_report.json" "$results/pruning_report_${name}.json" 2>/dev/null || true
}
run none
run fastv25 --pruning.type=fastv --pruning.keep_ratio=0.25
run fastv25_carry --pruning.type=fastv --pruning.keep_ratio=0.25 --pruning.encoder=carry_over
run fastv50_in_encoder --pruning.type=fastv --pruning.keep_ratio=0.5 --pruning.encoder=in_encoder \
  --pruning.encoder_layer=1 --pruning.encoder_keep_ratio=0.5
