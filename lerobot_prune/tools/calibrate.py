"""`lerobot-prune calibrate`: TIES's τ statistics for a checkpoint (methods_spec §4.4).

For `frames` frames (spread evenly over a local LeRobot dataset, or taken at the inference calls of
unpruned rollouts in a LeRobot sim) the checkpoint runs one unpruned prefix pass; the frame's τ is the
mean Kendall τ_b of the visual-attention ranking between consecutive VLM layers over the top-M~ tokens.
The median, P5, P95 and all values are saved as `ties_calibration.json` next to the checkpoint,
versioned with the backbone, K, k_τ (= M~) and ρ; `pruning.type=ties` loads them from there.
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from lerobot.configs import PreTrainedConfig
from lerobot.utils.constants import OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS

from ..registry import build_pruner
from ..strategies.none import NoPruningConfig
from ..strategies.ties import TIESConfig
from ..strategies.ties_calibration import CALIBRATION_FILENAME, TAU_ITEMS, calibration_record, frame_tau
from .progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class CalibrateArgs:
    """Args:
    policy_path: A pruned checkpoint folder (convert a base one first with `lerobot-prune convert`).
    dataset_repo_id: LeRobot dataset id (with dataset_root: read locally).
    dataset_root: Local folder of that dataset.
    env_type: Instead of a dataset, roll the unpruned policy out in this LeRobot sim (e.g. pusht).
    episode_length: Sim episode length (env_type only).
    frames: Frames to calibrate on (the paper uses 100).
    keep_ratio: ρ (k_τ = M~); default: the checkpoint's TIES keep_ratio, else TIES's default.
    layer: K; default: the checkpoint's TIES layer, else TIES's default.
    tau_items: "top_earlier" or "union" (see TIESConfig).
    out: Output JSON; default: the checkpoint's pruning.calibration_path (where the policy reads it), else
        ties_calibration.json in policy_path.
    device: Torch device.
    """

    policy_path: str = ""
    dataset_repo_id: str | None = None
    dataset_root: str | None = None
    env_type: str | None = None
    episode_length: int | None = None
    frames: int = 100
    keep_ratio: float | None = None
    layer: int | None = None
    tau_items: str = "top_earlier"
    out: str | None = None
    device: str = "cpu"


def calibrate(args: CalibrateArgs) -> Path:
    if not args.policy_path or not Path(args.policy_path).is_dir():
        raise ValueError(f"--policy_path={args.policy_path!r} is not a checkpoint folder.")
    if (args.dataset_repo_id is None) == (args.env_type is None):
        raise ValueError(
            "Give exactly one frame source: --dataset_repo_id (with --dataset_root) or --env_type."
        )
    if args.frames < 2:
        raise ValueError(f"--frames={args.frames} must be >= 2 (the paper uses 100).")
    if args.tau_items not in TAU_ITEMS:
        raise ValueError(f"--tau_items={args.tau_items!r} is not valid; choose one of {TAU_ITEMS}.")
    from lerobot.policies.factory import get_policy_class

    config = PreTrainedConfig.from_pretrained(args.policy_path)
    if not hasattr(config, "pruning"):
        raise TypeError(
            f"{args.policy_path} is a {config.type!r} checkpoint; calibrate a pruned one "
            f"(lerobot-prune convert --base={args.policy_path} --out=<dir>)."
        )
    if not isinstance(config.pruning, TIESConfig):
        raise ValueError(
            f"{args.policy_path} prunes with pruning.type={config.pruning.type!r}; only TIES uses calibration "
            f"statistics (convert with --pruning.type=ties)."
        )
    config.device = args.device
    ties = config.pruning
    keep_ratio = args.keep_ratio if args.keep_ratio is not None else ties.keep_ratio
    layer = args.layer if args.layer is not None else ties.layer
    TIESConfig(keep_ratio=keep_ratio, layer=layer, tau_items=args.tau_items)  # validates
    policy = get_policy_class(config.type).from_pretrained(args.policy_path, config=config)
    policy.model.pruner = build_pruner(NoPruningConfig())  # calibration runs full vision
    from lerobot.policies.factory import make_pre_post_processors

    preprocessor, postprocessor = make_pre_post_processors(
        policy_cfg=config, pretrained_path=args.policy_path,
        preprocessor_overrides={"device_processor": {"device": args.device}},
    )  # fmt: skip
    taus: list[float] = []
    bar = progress_bar(args.frames, "calibrate", "frame")

    def measure(batch: dict) -> None:
        images, img_masks = policy._preprocess_images(batch)
        state = policy.prepare_state(batch) if policy.model.state_in_prefix else None
        columns, valid = policy.model.visual_attention_columns(
            images, img_masks, batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK], state=state
        )
        for row in range(columns.shape[0]):
            if len(taus) < args.frames:
                budget = max(2, round(int(valid[row].sum()) * keep_ratio))
                taus.append(frame_tau(columns[row], valid[row], budget, args.tau_items))
                bar.update()
                bar.set_postfix_str(f"median τ {statistics.median(taus):.4f}", refresh=False)

    with bar:
        if args.env_type is not None:
            source = f"env:{args.env_type}"
            _frames_from_env(
                args, policy, preprocessor, postprocessor, measure, lambda: len(taus) >= args.frames
            )
        else:
            source = f"dataset:{args.dataset_repo_id}"
            _frames_from_dataset(args, preprocessor, measure)
    record = calibration_record(taus, policy.model.backbone_info, layer, keep_ratio, source)
    out = Path(args.out or ties.calibration_path or Path(args.policy_path) / CALIBRATION_FILENAME)
    out.write_text(json.dumps(record, indent=2))
    print(f"τ over {len(taus)} frames: median {record['tau_median']:.4f}, P5 {record['tau_p5']:.4f}, "
          f"P95 {record['tau_p95']:.4f} -> {out}")  # fmt: skip
    return out


@torch.no_grad()
def _frames_from_dataset(args: CalibrateArgs, preprocessor, measure) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset(args.dataset_repo_id, root=args.dataset_root)
    count = min(args.frames, len(dataset))
    indices = sorted({round(i * (len(dataset) - 1) / max(count - 1, 1)) for i in range(count)})
    for index in indices:
        item = dataset[index]
        batch = {k: v.unsqueeze(0) if isinstance(v, torch.Tensor) else v for k, v in item.items()}
        batch["task"] = [item.get("task", "")]
        measure(preprocessor(batch))


class _EnoughFramesError(Exception):
    pass


@torch.no_grad()
def _frames_from_env(args: CalibrateArgs, policy, preprocessor, postprocessor, measure, done) -> None:
    from lerobot.envs.configs import EnvConfig
    from lerobot.envs.factory import make_env, make_env_pre_post_processors
    from lerobot.scripts.lerobot_eval import rollout

    env_cls = EnvConfig.get_choice_class(args.env_type)
    env_cfg = env_cls(episode_length=args.episode_length) if args.episode_length else env_cls()
    envs = make_env(env_cfg, n_envs=1)
    env = next(iter(next(iter(envs.values())).values()))
    env_preprocessor, env_postprocessor = make_env_pre_post_processors(
        env_cfg=env_cfg, policy_cfg=policy.config
    )
    predict = policy.predict_action_chunk

    def recording_predict(batch, **kwargs):
        measure(batch)
        if done():
            raise _EnoughFramesError  # stop mid-episode instead of rolling it out to the end
        return predict(batch, **kwargs)

    policy.predict_action_chunk = recording_predict
    seed = 0
    try:
        while not done():
            rollout(
                env, policy, env_preprocessor, env_postprocessor, preprocessor, postprocessor, seeds=[seed]
            )
            seed += 1
    except _EnoughFramesError:
        pass
    finally:
        del policy.predict_action_chunk
        env.close()
