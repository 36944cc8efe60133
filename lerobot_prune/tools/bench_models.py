"""Random-weight models and fixed inputs for `lerobot-prune bench`: LeRobot's unmodified flow-matching model
and our pruned one with the same weights, for every policy type a model family runs, at three sizes
(`tiny`, `mid`, `scaled`, `full`; each family's `bench` module says what they are)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..families import family_for, policy_types
from ..families.bench_parts import BENCH_SIZES, BenchParts
from ..flops import vit_flops


@dataclass
class BenchModels:
    """LeRobot's model (`base`) and ours (`pruned`) with identical weights, plus what the bench needs."""

    base: nn.Module
    pruned: nn.Module
    inputs: dict
    vision_flops: int  # per sample, all cameras
    num_steps: int
    vlm_wrapper: Callable[[nn.Module], nn.Module]  # model -> the module whose `embed_image` encodes images


def build_models(policy_type: str, size: str, cameras: int, *, dtype: str, device: str, num_steps: int,
                 compile_model: bool, compile_mode: str, prompt_tokens: int = 20) -> BenchModels:  # fmt: skip
    """Both models in eval mode on `device`; weights drawn once (seed 0) and copied into the pruned one."""
    if policy_type not in policy_types():
        raise ValueError(f"--policy_type={policy_type!r} is not benchmarked; choose one of {policy_types()}.")
    if size not in BENCH_SIZES:
        raise ValueError(f"--size={size!r} is not valid; choose one of {BENCH_SIZES}.")
    from lerobot.configs import PreTrainedConfig

    import lerobot_policy_prune  # noqa: F401  (registers the pruned_* config classes)

    pruned_config_class = PreTrainedConfig.get_choice_class(f"pruned_{policy_type}")
    common = dict(device=device, compile_model=compile_model, compile_mode=compile_mode)
    parts = family_for(policy_type).bench_parts(policy_type, size, cameras, num_steps, pruned_config_class,
                                                common, dtype)  # fmt: skip
    torch.manual_seed(0)
    base = parts.build(parts.base_class, parts.base_config)
    pruned = parts.build(parts.pruned_class, parts.pruned_config)
    pruned.load_state_dict(base.state_dict(), strict=True)
    base, pruned = base.to(device).eval(), pruned.to(device).eval()
    return BenchModels(base, pruned, _inputs(parts, pruned, cameras, device, prompt_tokens),
                       _vision_flops(parts, pruned, cameras), num_steps, parts.vlm_wrapper)  # fmt: skip


def _inputs(parts: BenchParts, model, cameras: int, device: str, prompt_tokens: int = 20) -> dict:
    """Fixed `sample_actions` keyword arguments for one sample; the prompt has `prompt_tokens` real tokens."""
    g = torch.Generator().manual_seed(0)
    config = model.config
    size = parts.image_size
    images = [(torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device) for _ in range(cameras)]
    img_masks = [torch.ones(1, dtype=torch.bool, device=device) for _ in range(cameras)]
    length = config.tokenizer_max_length
    tokens = torch.randint(4, 200, (1, length), generator=g)
    masks = torch.arange(length)[None] < min(prompt_tokens, length)
    tokens = tokens.masked_fill(~masks, 0).to(device)
    masks = masks.to(device)
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=g).to(device)
    if not parts.takes_state:
        return dict(images=images, img_masks=img_masks, tokens=tokens, masks=masks, noise=noise)
    state = torch.randn(1, config.max_state_dim, generator=g).to(device)
    return dict(images=images, img_masks=img_masks, lang_tokens=tokens, lang_masks=masks, state=state,
                noise=noise)  # fmt: skip


def _vision_flops(parts: BenchParts, model, cameras: int) -> int:
    """Vision tower and projector FLOPs per sample (the part pruning never changes)."""
    vision, text_width, out_tokens, proj_in = parts.vision_dims(model)
    tower = vit_flops(vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers,
                      (vision.image_size // vision.patch_size) ** 2, vision.patch_size)  # fmt: skip
    return cameras * (tower + 2 * out_tokens * proj_in * text_width)
