"""Tiny random checkpoints shaped like a real robot (SO-101: 6 joints, named cameras), built offline."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import PruningConfig
from ..families.tiny import init_tiny
from ..tools.convert import convert
from .fake_feetech import SO101_MOTORS


def robot_features(cameras: dict[str, tuple[int, int]], joints=SO101_MOTORS):
    """Policy (input, output) features of a robot with `joints` and cameras `{name: (height, width)}`."""
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {f"observation.images.{name}": PolicyFeature(FeatureType.VISUAL, (3, h, w))
              for name, (h, w) in cameras.items()}  # fmt: skip
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (len(joints),))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (len(joints),))}


def robot_stats(joints=SO101_MOTORS) -> dict[str, dict[str, torch.Tensor]]:
    """Normalisation stats of joint positions in degrees (both π0's MEAN_STD and π0.5's QUANTILES)."""
    dim = len(joints)
    stat = {"mean": torch.zeros(dim), "std": torch.full((dim,), 20.0), "min": torch.full((dim,), -100.0),
            "max": torch.full((dim,), 100.0), "q01": torch.full((dim,), -60.0), "q99": torch.full((dim,), 60.0)}  # fmt: skip
    return {"observation.state": dict(stat), "action": dict(stat)}


def init_tiny_robot(out: str | Path, cameras: dict[str, tuple[int, int]] | None = None, *, policy_type: str = "pi0",
                    chunk_size: int = 10, n_action_steps: int = 10, seed: int = 0) -> Path:  # fmt: skip
    """Writes a tiny random checkpoint of `policy_type` (`pi0`, `pi05`) for an SO-101 arm (joints in degrees).

    Args:
        out: Checkpoint folder.
        cameras: `{camera name: (height, width)}`; default one 96x128 camera called `front`.
    """
    return init_tiny(out, policy_type=policy_type, features=robot_features(cameras or {"front": (96, 128)}),
                     stats=robot_stats(), chunk_size=chunk_size, n_action_steps=n_action_steps, seed=seed)  # fmt: skip


def tiny_pruned_robot(out: str | Path, pruning: PruningConfig, policy_type: str = "pi0", **kwargs) -> Path:
    """`init_tiny_robot` into `out/base`, converted to a `pruned_<policy_type>` checkpoint in `out/pruned`."""
    base = init_tiny_robot(Path(out) / "base", policy_type=policy_type, **kwargs)
    return convert(base, Path(out) / "pruned", pruning)
