"""Tiny random checkpoints shaped like a real robot (SO-101: 6 joints, named cameras), built offline."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..backbones.arch import TINY_ARCH, backbone_sizes
from ..config import PruningConfig
from ..convert import convert
from ..tiny import ARCH_SIDECAR, TOKENIZER_DIR, make_tiny_tokenizer
from .fake_feetech import SO101_MOTORS


def robot_features(cameras: dict[str, tuple[int, int]], joints=SO101_MOTORS):
    """Policy (input, output) features of a robot with `joints` and cameras `{name: (height, width)}`."""
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {f"observation.images.{name}": PolicyFeature(FeatureType.VISUAL, (3, h, w))
              for name, (h, w) in cameras.items()}  # fmt: skip
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (len(joints),))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (len(joints),))}


def init_tiny_pi0_robot(out: str | Path, cameras: dict[str, tuple[int, int]] | None = None, *,
                        chunk_size: int = 10, n_action_steps: int = 10, seed: int = 0) -> Path:  # fmt: skip
    """Writes a tiny random π0 (type `pi0`) checkpoint for an SO-101 arm (joint positions in degrees).

    Args:
        out: Checkpoint folder.
        cameras: `{camera name: (height, width)}`; default one 96x128 camera called `front`.
    """
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    from lerobot_policy_prune.pruned_pi0.processor_pruned_pi0 import make_pi0_family_processors

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = make_tiny_tokenizer(out / TOKENIZER_DIR)
    inputs, outputs = robot_features(cameras or {"front": (96, 128)})
    config = PI0Config(input_features=inputs, output_features=outputs, chunk_size=chunk_size,
                       n_action_steps=n_action_steps, device="cpu", push_to_hub=False)  # fmt: skip
    dim = len(SO101_MOTORS)
    stat = {"mean": torch.zeros(dim), "std": torch.full((dim,), 20.0),
            "min": torch.full((dim,), -100.0), "max": torch.full((dim,), 100.0)}  # fmt: skip
    stats = {"observation.state": dict(stat), "action": dict(stat)}
    torch.manual_seed(seed)
    with backbone_sizes(modeling_pi0, TINY_ARCH):
        policy = PI0Policy(config)
    policy.save_pretrained(out)
    pre, post = make_pi0_family_processors(config, stats, tokenizer_name=str(tokenizer_dir))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    (out / ARCH_SIDECAR).write_text(json.dumps(TINY_ARCH, indent=2))
    return out


def tiny_pruned_pi0_robot(out: str | Path, pruning: PruningConfig, **kwargs) -> Path:
    """`init_tiny_pi0_robot` into `out/base`, converted to a `pruned_pi0` checkpoint in `out/pruned`."""
    base = init_tiny_pi0_robot(Path(out) / "base", **kwargs)
    return convert(base, Path(out) / "pruned", pruning)
