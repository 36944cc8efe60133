"""Tiny random π0 / π0.5 base checkpoints: LeRobot's own policy and `save_pretrained`, PaliGemma at `arch` sizes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..tiny import TOKENIZER_DIR, env_features, env_stats, make_tiny_tokenizer
from .arch import ARCH_SIDECAR, TINY_ARCH, backbone_sizes, validate_arch


def init_tiny(out: Path, *, policy_type: str, env_type: str, empty_cameras: int, chunk_size: int,
              n_action_steps: int, seed: int, features=None, stats: dict | None = None,
              arch: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Writes a tiny `policy_type` ("pi0" / "pi05") checkpoint into the folder `out` (see
    `lerobot_prune.families.tiny.init_tiny`), with `lerobot_prune_arch.json` holding the sizes
    (`TINY_ARCH` updated by `arch`)."""
    sizes = {**TINY_ARCH, **(arch or {})}
    validate_arch(sizes)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = make_tiny_tokenizer(out / TOKENIZER_DIR)
    inputs, outputs = features or env_features(env_type)
    config_cls, policy_cls, module, make_processors = _upstream(policy_type)
    config = config_cls(
        input_features=inputs, output_features=outputs, chunk_size=chunk_size, n_action_steps=n_action_steps,
        empty_cameras=empty_cameras, device="cpu", push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    with backbone_sizes(module, sizes):
        policy = policy_cls(config)
    policy.save_pretrained(out)
    pre, post = make_processors(config, stats or env_stats(env_type), tokenizer_name=str(tokenizer_dir))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    (out / ARCH_SIDECAR).write_text(json.dumps(sizes, indent=2))
    return out


def _upstream(policy_type: str):
    """(config class, policy class, modeling module, processor factory) of an upstream policy type."""
    if policy_type == "pi05":
        from lerobot.policies.pi05 import modeling_pi05
        from lerobot.policies.pi05.configuration_pi05 import PI05Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy

        from .processors import make_pi05_processors

        return PI05Config, PI05Policy, modeling_pi05, make_pi05_processors
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    from .processors import make_pi0_family_processors

    return PI0Config, PI0Policy, modeling_pi0, make_pi0_family_processors
