"""`lerobot-prune visualize`: kept and pruned visual tokens over a policy's camera frames.

Frames come from one episode of a LeRobot dataset (`frames` frames spread evenly over it, one
inference call each) or from rollouts of the policy in a LeRobot sim (its first `frames` inference
calls). Writes `overlay_grid.png` (rows = frames, columns = cameras), `overlay.mp4` (one frame per
call, cameras side by side) and `frames.json` (kept tokens per camera of each frame) to `out`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..observe import observe_calls
from .overlay import OverlayStyle, overlays, tile, write_mp4, write_png

logger = logging.getLogger(__name__)


@dataclass
class VisualizeArgs:
    """Args:
    policy_path: Pruned checkpoint folder (from `lerobot-prune convert`).
    dataset_repo_id: LeRobot dataset id (with dataset_root: read locally).
    dataset_root: Local folder of that dataset.
    episode: Dataset episode to draw.
    env_type: Instead of a dataset, roll the policy out in this LeRobot sim (e.g. pusht).
    episode_length: Sim episode length; default: enough control steps for `frames` calls.
    frames: Frames (inference calls) to draw.
    out: Output folder.
    rename_map: Dataset/env image keys -> the policy's camera keys, as in lerobot-eval.
    device: Torch device.
    cell_px: Pixels per token cell.
    darken: Brightness kept by pruned tokens.
    fps: Frame rate of overlay.mp4.
    seed: Seed of the first sim episode.
    """

    policy_path: str = ""
    dataset_repo_id: str | None = None
    dataset_root: str | None = None
    episode: int = 0
    env_type: str | None = None
    episode_length: int | None = None
    frames: int = 8
    out: str = "outputs/visualize"
    rename_map: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    cell_px: int = 14
    darken: float = 0.35
    fps: int = 2
    seed: int = 0


@dataclass
class Frame:
    source: str  # "dataset index 12" / "env call 3"
    image: np.ndarray  # [C, S, S, 3] uint8
    kept: dict[str, int]


def visualize(args: VisualizeArgs) -> dict[str, Path]:
    """Draws the overlays; returns the paths written (`png`, `mp4`, `json`)."""
    if not args.policy_path or not (Path(args.policy_path) / "config.json").is_file():
        raise FileNotFoundError(
            f"--policy_path={args.policy_path!r} is not a checkpoint folder (no config.json)."
        )
    if (args.dataset_repo_id is None) == (args.env_type is None):
        raise ValueError(
            "Give exactly one frame source: --dataset_repo_id (with --dataset_root) or --env_type."
        )
    if args.frames < 1:
        raise ValueError(f"--frames={args.frames} must be >= 1.")
    style = OverlayStyle(cell_px=args.cell_px, darken=args.darken)
    if args.env_type is not None:
        env_cls = _env_class(args.env_type)
    else:
        indices, task = _dataset_frames(args)
    policy, preprocessor, postprocessor = load_pruned_policy(args.policy_path, args.device, args.rename_map)
    frames: list[Frame] = []

    def record(source: str):
        def observer(policy, batch) -> None:
            if len(frames) < args.frames:
                images, grid = overlays(policy, batch, style)
                kept = dict(zip(grid.camera_keys, grid.kept_per_camera[0].tolist(), strict=True))
                frames.append(Frame(f"{source} {len(frames)}", images[0], kept))
                print(
                    f"visualize: frame {len(frames)}/{args.frames} ({frames[-1].source}) kept {kept}",
                    flush=True,
                )

        return observer

    if args.env_type is not None:
        with observe_calls(record("env call")):
            _roll_out(args, env_cls, policy, preprocessor, postprocessor, lambda: len(frames) >= args.frames)
    else:
        _run_dataset(args, indices, task, policy, preprocessor, frames, record)
    return write_outputs(frames, Path(args.out), args.fps)


def load_pruned_policy(path: str, device: str, rename_map: dict[str, str]):
    """(policy, preprocessor, postprocessor) of a pruned checkpoint, built by LeRobot's factories."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.policies.factory import get_policy_class, make_pre_post_processors

    config = PreTrainedConfig.from_pretrained(path)
    if not hasattr(config, "pruning"):
        raise ValueError(
            f"{path} holds a {config.type!r} policy, not a pruned one; convert it: lerobot-prune convert "
            f"--base={path} --out=<dir> --pruning.type=<strategy>."
        )
    config.device = device
    policy = get_policy_class(config.type).from_pretrained(path, config=config)
    policy.reset()
    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=config,
        pretrained_path=path,
        preprocessor_overrides={
            "device_processor": {"device": device},
            "rename_observations_processor": {"rename_map": rename_map},
        },
    )
    return policy, preprocessor, postprocessor


def write_outputs(frames: list[Frame], out: Path, fps: int) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    png = write_png(tile([list(f.image) for f in frames]), out / "overlay_grid.png")
    mp4 = write_mp4([tile([list(f.image)]) for f in frames], out / "overlay.mp4", fps=fps)
    table = [{"frame": i, "source": f.source, "kept_per_camera": f.kept} for i, f in enumerate(frames)]
    path = out / "frames.json"
    path.write_text(json.dumps(table, indent=2))
    print(f"visualize: {len(frames)} frames -> {png}, {mp4}")
    return {"png": png, "mp4": mp4, "json": path}


def _env_class(env_type: str):
    from lerobot.envs.configs import EnvConfig

    known = sorted(EnvConfig.get_known_choices())
    if env_type not in known:
        raise ValueError(f"--env_type={env_type!r} is not a LeRobot env; choose one of {known}.")
    return EnvConfig.get_choice_class(env_type)


def _dataset_frames(args: VisualizeArgs) -> tuple[list[int], str]:
    """Checks episode and cameras before the policy loads; returns frame indices within the episode."""
    from lerobot.configs import PreTrainedConfig
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata(args.dataset_repo_id, root=args.dataset_root)
    if not 0 <= args.episode < meta.total_episodes:
        raise ValueError(
            f"--episode={args.episode} is not in {args.dataset_repo_id} (episodes 0..{meta.total_episodes - 1})."
        )
    config = PreTrainedConfig.from_pretrained(args.policy_path)
    available = [args.rename_map.get(k, k) for k in meta.camera_keys]
    wanted = [k for k in config.image_features if "empty_camera" not in k]
    if missing := [k for k in wanted if k not in available]:
        raise ValueError(
            f"Dataset {args.dataset_repo_id} lacks the policy's camera(s) {missing}; it has {meta.camera_keys}. "
            f"Map names with --rename_map, e.g. --rename_map='{{{meta.camera_keys[0] if meta.camera_keys else 'key'}: "
            f"{missing[0]}}}'."
        )
    episode = meta.episodes[args.episode]
    length = int(episode["length"])
    count = min(args.frames, length)
    indices = sorted({round(i * (length - 1) / max(count - 1, 1)) for i in range(count)})
    tasks = episode.get("tasks") or [""]
    return indices, tasks[0]


@torch.no_grad()
def _run_dataset(args, indices, task, policy, preprocessor, frames, record) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(args.dataset_repo_id, root=args.dataset_root, episodes=[args.episode])
    for index in indices:
        item = dataset[index]
        batch = {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in item.items()}
        batch["task"] = [item.get("task", task)]
        with observe_calls(record(f"episode {args.episode} frame {int(item['frame_index'])}, call")):
            policy.predict_action_chunk(preprocessor(batch))


@torch.no_grad()
def _roll_out(args, env_cls, policy, preprocessor, postprocessor, done: Callable[[], bool]) -> None:
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.scripts.lerobot_eval import rollout

    length = args.episode_length or args.frames * policy.config.n_action_steps
    env_cfg = env_cls(episode_length=length)
    envs = make_env(env_cfg, n_envs=1)
    env = next(iter(next(iter(envs.values())).values()))
    env_pre, env_post = make_env_pre_post_processors(env_cfg=env_cfg, policy_cfg=policy.config)
    seed = args.seed
    try:
        while not done():
            rollout(env, policy, env_pre, env_post, preprocessor, postprocessor, seeds=[seed])
            seed += 1
    finally:
        env.close()
