"""`lerobot-prune record-expert`: MetaWorld's scripted experts into a local LeRobotDataset.

Each episode is LeRobot's own `MetaworldEnv` (the env `lerobot-eval --env.type=metaworld` runs) reset
with one seed of a fixed range, driven by the task's scripted expert from `metaworld.policies`, which
reads the full 39-D MetaWorld observation; the dataset stores only what a policy gets in `lerobot-eval`:
the `corner2` camera image (resized to `image_size` with π0's own resize, so training sees the pixels
evaluation will) and the 4-D hand position + gripper state, with the task's instruction. Episodes are
rendered in `workers` processes and written in seed order by this one, so a dataset is reproducible
from its arguments. An expert episode that does not succeed is left out and reported.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)
RECORD_INFO = "lerobot_prune_record.json"


@dataclass
class RecordArgs:
    """Args:
    root: Dataset folder (created; refused if it exists unless --overwrite=true).
    tasks: MetaWorld task names (`*-v3`, as `lerobot-eval --env.task`); several make a multi-task dataset.
    episodes_per_task: Successful expert episodes to record per task.
    seed_start: First env seed; task i uses seeds seed_start, seed_start+1, ... (disjoint from eval seeds).
    image_size: Stored image side in pixels (π0 resizes to 224 anyway).
    workers: Processes that render episodes (MuJoCo rendering is the cost).
    repo_id: Dataset name recorded in its metadata; never pushed.
    overwrite: Replace an existing `root`.
    """

    root: str = "outputs/data/metaworld"
    tasks: list[str] = field(default_factory=lambda: ["button-press-topdown-v3", "coffee-button-v3"])
    episodes_per_task: int = 50
    seed_start: int = 0
    image_size: int = 224
    workers: int = 2
    repo_id: str = "local/metaworld_expert"
    overwrite: bool = False


def validate(args: RecordArgs) -> None:
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    unknown = [t for t in args.tasks if t not in TASK_DESCRIPTIONS]
    if unknown or not args.tasks:
        raise ValueError(
            f"tasks={unknown or args.tasks}: unknown MetaWorld task; valid: {sorted(TASK_DESCRIPTIONS)}"
        )
    for name in ("episodes_per_task", "image_size", "workers"):
        if getattr(args, name) < 1:
            raise ValueError(f"{name}={getattr(args, name)} must be >= 1.")
    if args.seed_start < 0:
        raise ValueError(f"seed_start={args.seed_start} must be >= 0.")
    root = Path(args.root)
    if root.exists() and not args.overwrite:
        raise ValueError(f"root={root} exists; pass --overwrite=true to replace it.")


def features(image_size: int) -> dict:
    """LeRobotDataset features: the camera as video, state and action as float32."""
    return {
        "observation.image": {"dtype": "video", "shape": (image_size, image_size, 3),
                              "names": ["height", "width", "channels"]},
        "observation.state": {"dtype": "float32", "shape": (4,), "names": ["x", "y", "z", "gripper"]},
        "action": {"dtype": "float32", "shape": (4,), "names": ["dx", "dy", "dz", "grip"]},
    }  # fmt: skip


def expert_episode(job: tuple[str, int, int]) -> dict:
    """Runs one expert episode of LeRobot's MetaworldEnv; returns its frames and outcome.

    Returns:
        {"task", "seed", "success", "images": uint8 (T, S, S, 3), "states": (T, 4), "actions": (T, 4)}.
    """
    import torch
    from lerobot.envs.metaworld import MetaworldEnv
    from lerobot.policies.common.vla_utils import resize_with_pad_torch

    task, seed, size = job
    env = MetaworldEnv(task=task, obs_type="pixels_agent_pos")
    obs, _ = env.reset(seed=seed)
    images, states, actions, success = [], [], [], False
    try:
        for _ in range(env._max_episode_steps):
            action = np.clip(env.expert_policy.get_action(env._env._get_obs()), -1.0, 1.0).astype(np.float32)
            pixels = torch.from_numpy(np.ascontiguousarray(obs["pixels"]))
            images.append(resize_with_pad_torch(pixels, size, size)[0].numpy())
            states.append(np.asarray(obs["agent_pos"], dtype=np.float32))
            actions.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                success = bool(info["is_success"])
                break
    finally:
        env.close()
    return {"task": task, "seed": seed, "success": success, "images": np.stack(images),
            "states": np.stack(states), "actions": np.stack(actions)}  # fmt: skip


def record(args: RecordArgs) -> Path:
    """Records `episodes_per_task` successful expert episodes per task; returns the dataset root."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.envs.metaworld import TASK_DESCRIPTIONS

    from .progress import progress_bar

    validate(args)
    root = Path(args.root)
    if root.exists():
        shutil.rmtree(root)
    dataset = LeRobotDataset.create(args.repo_id, fps=80, features=features(args.image_size), root=root,
                                    robot_type="sawyer", use_videos=True)  # fmt: skip
    kept = {t: [] for t in args.tasks}
    failed = {t: [] for t in args.tasks}
    # Seeds beyond the nominal range replace failed expert episodes; 2x headroom is never reached in practice.
    jobs = [
        (t, args.seed_start + i, args.image_size)
        for i in range(2 * args.episodes_per_task)
        for t in args.tasks
    ]
    total = args.episodes_per_task * len(args.tasks)
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers) as pool, progress_bar(total, "expert episodes", "ep") as bar:
        for ep in pool.imap(expert_episode, jobs):
            task = ep["task"]
            if len(kept[task]) >= args.episodes_per_task:
                if all(len(v) >= args.episodes_per_task for v in kept.values()):
                    break
                continue
            if not ep["success"]:
                failed[task].append(ep["seed"])
                continue
            for image, state, action in zip(ep["images"], ep["states"], ep["actions"], strict=True):
                dataset.add_frame({"observation.image": image, "observation.state": state, "action": action,
                                   "task": TASK_DESCRIPTIONS[task]})  # fmt: skip
            dataset.save_episode()
            kept[task].append(ep["seed"])
            bar.update(1)
            bar.set_postfix(task=task, seed=ep["seed"], frames=len(ep["actions"]))
        pool.terminate()
    dataset.finalize()
    missing = {t: args.episodes_per_task - len(s) for t, s in kept.items() if len(s) < args.episodes_per_task}
    if missing:
        raise RuntimeError(f"the expert succeeded too rarely; episodes missing per task: {missing}")
    info = {"args": asdict(args), "seeds": kept, "expert_failures": failed,
            "instructions": {t: TASK_DESCRIPTIONS[t] for t in args.tasks}}  # fmt: skip
    (root / RECORD_INFO).write_text(json.dumps(info, indent=2))
    logger.info("recorded %d episodes into %s (expert failures: %s)", total, root, failed)
    return root
