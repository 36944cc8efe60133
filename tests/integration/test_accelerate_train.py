"""LeRobot's multi-process training path (`accelerate launch --multi_gpu` → `lerobot-train`) on the CPU.

With `--policy.device=cpu` LeRobot builds its Accelerator with `cpu=True`, so the two processes talk over
gloo: the path a user launches on GPUs, run here with a pruned π0. Two processes at batch 4 each see, step for step, the same 8 samples as one process at batch 8:
LeRobot's `EpisodeAwareSampler` gives every rank the same permutation and accelerate deals its batches out
in turn. Gradients are averaged across ranks, so the runs differ only in the flow-matching noise each rank
draws and in that the 2-process log shows rank 0's loss (its 4 samples), hence the tolerance below.
"""

import re
import shutil
import subprocess
from pathlib import Path

from test_lerobot_train import ENV, _dataset_args, _logged_steps, make_so101_dataset

from lerobot_prune import make_pruning_config
from lerobot_prune.tools.convert import convert

STEPS = 16
MEAN_LOSS_REL_TOL = 0.15  # measured: 1 % (2.05 vs 2.03 over 16 steps)


def _losses(log: str) -> list[float]:
    return [float(m) for m in re.findall(r"\bloss:([0-9.]+)", log)]


def _train(ckpt: Path, dataset, out: Path, processes: int) -> str:
    train = [shutil.which("lerobot-train"), f"--policy.path={ckpt}", "--policy.push_to_hub=false",
             "--policy.device=cpu", *_dataset_args(dataset, "observation.image"), f"--steps={STEPS}",
             f"--batch_size={8 // processes}", "--log_freq=1", "--save_freq=1000", "--seed=7",
             "--policy.optimizer_lr=1e-3", "--policy.scheduler_warmup_steps=0", f"--output_dir={out}",
             "--wandb.enable=false"]  # fmt: skip
    if processes > 1:
        launch = [shutil.which("accelerate"), "launch", "--multi_gpu", f"--num_processes={processes}",
                  "--num_machines=1", "--mixed_precision=no", "--dynamo_backend=no",
                  "--num_cpu_threads_per_process=1", "--main_process_port=29533"]  # fmt: skip
        train = [*launch, *train]
    done = subprocess.run(train, capture_output=True, text=True, env=ENV, timeout=900, cwd=out.parent)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    return log


def test_two_process_accelerate_training_matches_one_process(tiny_base_checkpoint, tmp_path):
    dataset = make_so101_dataset(tmp_path / "data", episodes=4, frames=16)
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.25))
    one = _train(ckpt, dataset, tmp_path / "one", processes=1)
    two = _train(ckpt, dataset, tmp_path / "two", processes=2)

    assert "Effective batch size: 4 x 2 = 8" in two and "Effective batch size: 8 x 1 = 8" in one
    for log in (one, two):
        assert _logged_steps(log) == list(range(1, STEPS + 1))  # only the main process logs
        assert log.count("pruning/kept_visual_tokens:64.000") == STEPS
    loss_one, loss_two = _losses(one), _losses(two)
    assert len(loss_one) == len(loss_two) == STEPS
    for loss in (loss_one, loss_two):  # both learn (per-step losses are noisy: compare 4-step means)
        assert sum(loss[-4:]) < sum(loss[:4])
    mean_one, mean_two = sum(loss_one) / STEPS, sum(loss_two) / STEPS
    assert abs(mean_two - mean_one) <= MEAN_LOSS_REL_TOL * mean_one, (loss_one, loss_two)
    saved = tmp_path / "two/checkpoints/last/pretrained_model"
    assert '"type": "pruned_pi0"' in (saved / "config.json").read_text()
    assert (saved / "model.safetensors").is_file()
