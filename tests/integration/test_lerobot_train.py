"""The real `lerobot-train` on a small local so101-like dataset with tiny pruned π0 checkpoints (Hub offline).

Pruning-aware fine-tuning end to end: `train/pruning/*` metrics in the console log and in the offline
wandb run file, saved `pruned_pi0` checkpoints, resuming, fresh `--policy.type=pruned_pi0` training, and
bad datasets rejected before training starts.
"""

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from lerobot_prune import make_pruning_config
from lerobot_prune.families.paligemma.arch import TINY_ARCH
from lerobot_prune.families.tiny import TOKENIZER_DIR
from lerobot_prune.tools.convert import convert

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
PRUNING_KEYS = ("pruning/kept_visual_tokens", "pruning/keep_fraction", "pruning/flop_ratio")


@dataclass(frozen=True)
class LocalDataset:
    root: Path
    repo_id: str
    camera: str  # image key in the dataset


def make_so101_dataset(root: Path, state_dim: int = 6, episodes: int = 2, frames: int = 10) -> LocalDataset:
    """An so101-like LeRobot dataset: 6-dim action, `state_dim` state (none if 0), one 96x128 camera."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    camera = "observation.images.front"
    features = {
        "action": {"dtype": "float32", "shape": (6,), "names": [f"joint_{i}.pos" for i in range(6)]},
        camera: {"dtype": "image", "shape": (96, 128, 3), "names": ["height", "width", "channels"]},
    }
    if state_dim:
        names = [f"joint_{i}.pos" for i in range(state_dim)]
        features["observation.state"] = {"dtype": "float32", "shape": (state_dim,), "names": names}
    dataset = LeRobotDataset.create(
        "local/so101_prune_train", fps=10, features=features, root=root, robot_type="so101_follower",
        use_videos=False,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        for _ in range(frames):
            frame = {
                "action": rng.standard_normal(6).astype(np.float32),
                camera: rng.integers(0, 256, (96, 128, 3), dtype=np.uint8),
                "task": "pick up the cube",
            }
            if state_dim:
                frame["observation.state"] = rng.standard_normal(state_dim).astype(np.float32)
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return LocalDataset(root, "local/so101_prune_train", camera)


@pytest.fixture
def train_dataset(so101_recorded_dataset) -> LocalDataset:
    """The dataset `lerobot-rollout --strategy.type=episodic` recorded with a pruned policy on the SO-101."""
    root, repo_id = so101_recorded_dataset
    return LocalDataset(Path(root), repo_id, "observation.images.front")


def _train(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [shutil.which("lerobot-train"), "--policy.push_to_hub=false", "--policy.device=cpu", *args]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=600, cwd=cwd)


def _dataset_args(dataset: LocalDataset, rename_to: str | None = None) -> list[str]:
    args = [f"--dataset.repo_id={dataset.repo_id}", f"--dataset.root={dataset.root}", "--num_workers=0"]
    if rename_to is not None and dataset.camera != rename_to:
        args.append(f"--rename_map={json.dumps({dataset.camera: rename_to})}")
    return args


def _wandb_history(run_root: Path) -> list[dict]:
    """History rows of the offline run file, read with wandb's own record reader (no network)."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    (run_file,) = run_root.glob("wandb/offline-run-*/run-*.wandb")
    store = datastore.DataStore()
    store.open_for_scan(str(run_file))
    rows = []
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                         for item in record.history.item})  # fmt: skip
    return rows


def _logged_steps(output: str) -> list[int]:
    return [int(part.split(":")[1]) for part in output.split() if part.startswith("step:")]


def test_lerobot_train_logs_pruning_metrics_saves_and_resumes(tiny_base_checkpoint, train_dataset, tmp_path):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.25))
    out = tmp_path / "train"
    done = _train(
        [f"--policy.path={ckpt}", *_dataset_args(train_dataset, "observation.image"), "--steps=4",
         "--batch_size=2", "--log_freq=1", "--save_freq=2", f"--output_dir={out}", "--wandb.enable=true",
         "--wandb.mode=offline", "--wandb.project=prune_test"],
        tmp_path,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert _logged_steps(log) == [1, 2, 3, 4]
    # One real camera (256 tokens) and one padded camera: fastv keeps 64.
    assert (
        log.count("pruning/kept_visual_tokens:64.000") == 4 and log.count("pruning/keep_fraction:0.250") == 4
    )

    saved = json.loads((out / "checkpoints/last/pretrained_model/config.json").read_text())
    assert saved["type"] == "pruned_pi0" and saved["arch_override"] == TINY_ARCH
    assert saved["pruning"]["type"] == "fastv" and saved["pruning"]["keep_ratio"] == 0.25
    assert saved["pruning"]["in_training"] is True
    assert (out / "checkpoints/000002/pretrained_model/model.safetensors").is_file()

    rows = [r for r in _wandb_history(out) if "train/loss" in r]
    assert [r["train/steps"] for r in rows] == [1, 2, 3, 4]
    for row in rows:
        assert row["train/pruning/kept_visual_tokens"] == 64 and row["train/pruning/keep_fraction"] == 0.25
        assert 0 < row["train/pruning/flop_ratio"] < 1

    resumed = _train(
        ["--resume=true", f"--config_path={out}/checkpoints/last/pretrained_model/train_config.json",
         "--steps=6"],
        tmp_path,
    )  # fmt: skip
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-3000:]
    assert _logged_steps(log) == [5, 6]
    assert log.count("pruning/kept_visual_tokens:64.000") == 2
    state = json.loads((out / "checkpoints/000006/training_state/training_step.json").read_text())
    assert state["step"] == 6


def test_lerobot_train_fresh_pruned_pi0_type(tiny_base_checkpoint, train_dataset, tmp_path):
    out = tmp_path / "train"
    done = _train(
        ["--policy.type=pruned_pi0", f"--policy.arch_override={json.dumps(TINY_ARCH)}",
         f"--policy.tokenizer_name={tiny_base_checkpoint / TOKENIZER_DIR}", "--policy.pruning.type=adp",
         "--policy.pruning.keep_ratio=0.25", "--policy.chunk_size=10", "--policy.n_action_steps=10",
         *_dataset_args(train_dataset), "--steps=2", "--batch_size=2", "--log_freq=1",
         f"--output_dir={out}", "--wandb.enable=false"],
        tmp_path,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert _logged_steps(log) == [1, 2]
    assert log.count("pruning/kept_visual_tokens:64.000") == 2 and log.count("pruning/gate_state:1.000") == 2
    saved = json.loads((out / "checkpoints/last/pretrained_model/config.json").read_text())
    assert saved["type"] == "pruned_pi0" and saved["pruning"]["type"] == "adp"
    assert set(saved["input_features"]) == {"observation.state", train_dataset.camera}


def test_lerobot_train_rejects_a_dataset_without_adps_state_slice(tiny_base_checkpoint, tmp_path):
    stateless = make_so101_dataset(tmp_path / "stateless", state_dim=0, episodes=1, frames=4)
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("adp", eef_slice=[0, 2]))
    done = _train(
        [f"--policy.path={ckpt}", *_dataset_args(stateless, "observation.image"), "--steps=2",
         "--batch_size=2", f"--output_dir={tmp_path / 'train'}", "--wandb.enable=false"],
        tmp_path,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode != 0
    assert "observation.state[0:2] (pruning.eef_slice=[0, 2])" in log
    assert "the dataset (no observation.state) has 0 values" in log
    assert not _logged_steps(log)


def test_lerobot_train_rejects_an_eef_slice_beyond_the_dataset_state(tiny_base_checkpoint, train_dataset,
                                                                     tmp_path):  # fmt: skip
    done = _train(
        ["--policy.type=pruned_pi0", f"--policy.arch_override={json.dumps(TINY_ARCH)}",
         f"--policy.tokenizer_name={tiny_base_checkpoint / TOKENIZER_DIR}", "--policy.pruning.type=adp",
         "--policy.pruning.eef_slice=[4,8]", *_dataset_args(train_dataset), "--steps=2", "--batch_size=2",
         f"--output_dir={tmp_path / 'train'}", "--wandb.enable=false"],
        tmp_path,
    )  # fmt: skip
    log = done.stdout + done.stderr
    assert done.returncode != 0
    assert "observation.state[4:8] (pruning.eef_slice=[4, 8])" in log
    assert "but the dataset's observation.state has 6 values" in log
    assert not _logged_steps(log)
