"""`lerobot-prune eval | visualize` on LeRobot's PushT sim and a local dataset (Hub and W&B offline)."""

import json
import os
import shutil
import subprocess

import av
import numpy as np
import pytest
import torch
from conftest import make_pruned
from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS
from PIL import Image

from lerobot_prune import make_pruning_config
from lerobot_prune.observe import observe_calls
from lerobot_prune.tools.convert import convert
from lerobot_prune.tools.overlay import OverlayRecorder, OverlayStyle, letterbox
from lerobot_prune.tools.visualize import VisualizeArgs, visualize

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
EVAL = ["--env.type=pusht", "--eval.use_async_envs=false", "--policy.device=cpu"]
TASK = "push the t-shaped block onto target"


def _prune(args, cwd, timeout=600):
    done = subprocess.run(
        [shutil.which("lerobot-prune"), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _wandb_history(run_dir) -> dict:
    """Logged values of an offline run, read from its .wandb file with wandb's own record reader."""
    from wandb.proto import wandb_internal_pb2
    from wandb.sdk.internal import datastore

    store = datastore.DataStore()
    store.open_for_scan(str(next(run_dir.glob("run-*.wandb"))))
    values = {}
    while (data := store.scan_data()) is not None:
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        if record.WhichOneof("record_type") == "history":
            for item in record.history.item:
                key = "/".join(item.nested_key[:1]) if item.nested_key else item.key
                sub = item.nested_key[1] if len(item.nested_key) > 1 else None
                value = json.loads(item.value_json)
                if sub is None:
                    values[key] = value
                else:
                    values.setdefault(key, {})[sub] = value
    return values


def _write_dataset(root, camera="observation.image", episodes=2, length=12):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        camera: {"dtype": "image", "shape": (96, 96, 3), "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
    }
    dataset = LeRobotDataset.create("local/evaltools", fps=10, features=features, root=root, use_videos=False)
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        for _ in range(length):
            dataset.add_frame({
                camera: rng.integers(0, 255, (96, 96, 3), dtype=np.uint8),
                "observation.state": rng.random(2, dtype=np.float32) * 512,
                "action": rng.random(2, dtype=np.float32) * 512,
                "task": TASK,
            })  # fmt: skip
        dataset.save_episode()
    dataset.finalize()
    return root


@pytest.fixture(scope="module")
def fastv_checkpoint(tiny_base_checkpoint, tmp_path_factory):
    return convert(
        tiny_base_checkpoint,
        tmp_path_factory.mktemp("ckpt") / "fastv",
        make_pruning_config("fastv", keep_ratio=0.25),
    )


def test_overlay_shows_kept_tokens_unchanged_and_pruned_ones_darkened():
    policy = make_pruned("fastv", num_cameras=2, keep_ratio=0.25)
    images = {f"observation.images.cam{i}": torch.rand(2, 3, 64, 96) for i in range(2)}
    batch = {**images, "observation.state": torch.zeros(2, 2)}
    batch[OBS_LANGUAGE_TOKENS] = torch.randint(4, 50, (2, 8))
    batch[OBS_LANGUAGE_ATTENTION_MASK] = torch.ones(2, 8, dtype=torch.bool)
    del batch["observation.images.cam1"]  # a missing camera: none of its tokens is selectable
    recorder = OverlayRecorder(style=OverlayStyle(cell_px=4, grid_lines=False), max_episodes=2)
    with observe_calls(recorder):
        policy.predict_action_chunk(batch)
    assert sorted(recorder.frames) == [0, 1] and recorder.frames[0][0].shape == (2, 64, 64, 3)
    assert recorder.kept[0] == [[64, 0]]  # 0.25 of the present camera's 256 tokens
    selection = policy.model.last_selection
    kept = torch.zeros(512, dtype=torch.bool)
    kept[selection.keep_idx[0][selection.valid[0]]] = True
    kept = kept[:256].view(16, 16).repeat_interleave(4, 0).repeat_interleave(4, 1).numpy()
    frame = letterbox(images["observation.images.cam0"][:1], 64)[0].astype(int)
    shown = recorder.frames[0][0][0].astype(int)
    assert np.array_equal(shown[kept], frame[kept])
    pruned, original = shown[~kept], frame[~kept]
    assert pruned.mean() < original.mean() * 0.75  # darkened
    assert (
        pruned[:, 0].mean() - pruned[:, 2].mean() > original[:, 0].mean() - original[:, 2].mean() + 20
    )  # red
    assert recorder.frames[0][0][1].max() <= 31  # the missing camera is drawn dark


@pytest.mark.sim
def test_eval_logs_metrics_overlays_and_videos_to_offline_wandb(fastv_checkpoint, tmp_path):
    out = tmp_path / "eval"
    stdout = _prune(
        ["eval", f"--policy.path={fastv_checkpoint}", *EVAL, "--env.episode_length=20", "--eval.n_episodes=2",
         "--eval.batch_size=2", f"--output_dir={out}", "--wandb.mode=offline", "--wandb.project=prune_test",
         "--wandb.run_name=fastv25", "--overlay.calls=2"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "wandb (offline) run:" in stdout
    run_dir = next((out / "wandb").glob("offline-run-*"))
    logged = _wandb_history(run_dir)
    info = json.loads((out / "eval_info.json").read_text())["overall"]
    assert logged["eval/pc_success"] == info["pc_success"] and logged["eval/n_episodes"] == 2
    assert logged["eval/avg_sum_reward"] == pytest.approx(info["avg_sum_reward"])
    assert logged["pruning/kept_visual/image"] == 64 and logged["pruning/kept_visual/empty_camera_0"] == 0
    assert 0 < logged["pruning/latency_ms_p50"] <= logged["pruning/latency_ms_p95"]
    assert 0 < logged["pruning/flop_ratio"] < 1
    assert logged["eval/episodes"]["nrows"] == 2
    for episode in (0, 1):
        image = logged[f"overlay/episode_{episode}"]
        assert image["_type"] == "image-file" and (run_dir / "files" / image["path"]).is_file()
        # two calls (rows) x two cameras (columns) of 16 x 14 pixels, 4-pixel gaps
        assert (image["height"], image["width"]) == (452, 452)
        assert (run_dir / "files" / logged[f"overlay_video/episode_{episode}"]["path"]).is_file()
    assert (run_dir / "files" / logged["eval/video"]["path"]).suffix == ".mp4"
    report = json.loads((out / "pruning_report.json").read_text())
    assert report["summary"]["calls"] == 2


def test_visualize_rejects_missing_episode_and_missing_camera(fastv_checkpoint, tmp_path):
    data = _write_dataset(tmp_path / "ds", episodes=1, length=3)
    args = VisualizeArgs(policy_path=str(fastv_checkpoint), dataset_repo_id="local/evaltools",
                         dataset_root=str(data), episode=3, out=str(tmp_path / "v"))  # fmt: skip
    with pytest.raises(ValueError, match=r"--episode=3 is not in local/evaltools \(episodes 0..0\)"):
        visualize(args)
    wrist = _write_dataset(tmp_path / "wrist", camera="observation.images.wrist", episodes=1, length=3)
    args.dataset_root, args.episode = str(wrist), 0
    with pytest.raises(ValueError, match=r"lacks the policy's camera\(s\) \['observation.image'\]; it has "):
        visualize(args)
    with pytest.raises(ValueError, match="exactly one frame source"):
        visualize(VisualizeArgs(policy_path=str(fastv_checkpoint), out=str(tmp_path / "v")))
    assert not (tmp_path / "v").exists()


@pytest.mark.sim
def test_visualize_dataset_episode_writes_png_grid_and_mp4(fastv_checkpoint, tmp_path):
    data = _write_dataset(tmp_path / "ds")
    stdout = _prune(
        ["visualize", f"--policy_path={fastv_checkpoint}", "--dataset_repo_id=local/evaltools",
         f"--dataset_root={data}", "--episode=1", "--frames=4", f"--out={tmp_path / 'vis'}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert "visualize: frame 4/4" in stdout
    grid = Image.open(tmp_path / "vis" / "overlay_grid.png")
    assert grid.size == (2 * 224 + 4, 4 * 224 + 3 * 4)  # cameras x frames
    with av.open(str(tmp_path / "vis" / "overlay.mp4")) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 4 and frames[0].shape == (224, 452, 3)
    table = json.loads((tmp_path / "vis" / "frames.json").read_text())
    assert [f["source"] for f in table] == [
        f"episode 1 frame {i}, call {n}" for n, i in enumerate([0, 4, 7, 11])
    ]
    assert all(
        f["kept_per_camera"] == {"observation.image": 64, "observation.images.empty_camera_0": 0}
        for f in table
    )


@pytest.mark.sim
def test_visualize_sim_rollout_draws_the_first_calls(fastv_checkpoint, tmp_path):
    paths = visualize(VisualizeArgs(policy_path=str(fastv_checkpoint), env_type="pusht", frames=2,
                                    out=str(tmp_path / "vis")))  # fmt: skip
    assert Image.open(paths["png"]).size == (452, 452)
    assert [f["source"] for f in json.loads(paths["json"].read_text())] == ["env call 0", "env call 1"]
