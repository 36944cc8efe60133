"""Random-weight models and fixed inputs for `lerobot-prune bench`: LeRobot's unmodified flow-matching model
and our pruned one with the same weights, for π0, π0.5 and SmolVLA at three sizes.

Sizes:
    tiny  test-sized backbones (seconds on a CPU).
    mid   a CPU-sized model that is compute-bound (matmuls dominate), for the CPU FLOP-ratio check.
    full  the real sizes: π0/π0.5 = PaliGemma (Gemma-2B + SigLIP-So400m) + Gemma-300M expert;
          SmolVLA = SmolVLM2-500M (first 16 of 32 text layers) + its 0.75-wide expert.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass

import torch
from torch import nn

from .backbones.arch import TINY_ARCH, backbone_sizes
from .metrics import vit_flops

BENCH_POLICY_TYPES = ("pi0", "pi05", "smolvla")
BENCH_SIZES = ("tiny", "mid", "full")

MID_ARCH = {
    "width": 512, "depth": 6, "mlp_dim": 2048, "num_heads": 8, "num_kv_heads": 1, "head_dim": 64,
    "expert_width": 256, "expert_mlp_dim": 1024, "vision_width": 128, "vision_depth": 1, "vision_heads": 2,
    "vision_mlp_dim": 256, "vocab_size": 1024,
}  # fmt: skip
# SmolVLM2-500M-Video-Instruct's published sizes (SmolLM2-360M text model, SigLIP-B/16 at 512 px).
SMOLVLM2_500M_TEXT = {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                      "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64, "vocab_size": 49280}  # fmt: skip
SMOLVLM2_500M_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                        "num_attention_heads": 12}  # fmt: skip
SMOLVLM_MID_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8,
                    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64}  # fmt: skip
SMOLVLM_SIZES = {
    "tiny": ({}, {}),
    "mid": (SMOLVLM_MID_TEXT, {}),
    "full": (SMOLVLM2_500M_TEXT, SMOLVLM2_500M_VISION),
}
PALIGEMMA_SIZES = {"tiny": TINY_ARCH, "mid": MID_ARCH, "full": None}


@dataclass
class BenchModels:
    """LeRobot's model (`base`) and ours (`pruned`) with identical weights, plus what the bench needs."""

    base: nn.Module
    pruned: nn.Module
    inputs: dict
    vision_flops: int  # per sample, all cameras
    num_steps: int


def build_models(policy_type: str, size: str, cameras: int, *, dtype: str, device: str, num_steps: int,
                 compile_model: bool, compile_mode: str, prompt_tokens: int = 20) -> BenchModels:  # fmt: skip
    """Both models in eval mode on `device`; weights drawn once (seed 0) and copied into the pruned one."""
    if policy_type not in BENCH_POLICY_TYPES:
        raise ValueError(
            f"--policy_type={policy_type!r} is not benchmarked; choose one of {BENCH_POLICY_TYPES}."
        )
    if size not in BENCH_SIZES:
        raise ValueError(f"--size={size!r} is not valid; choose one of {BENCH_SIZES}.")
    common = dict(device=device, compile_model=compile_model, compile_mode=compile_mode)
    if policy_type == "smolvla":
        base_cls, pruned_cls, base_config, pruned_config = _smolvla(size, cameras, num_steps, common)

        def make(cls, config):
            model = cls(config)
            if dtype == "bfloat16":  # as SmolVLA's pretrained VLM loads (`torch_dtype="bfloat16"`)
                model.vlm_with_expert.vlm.to(torch.bfloat16)
            return model
    else:
        base_cls, pruned_cls, base_config, pruned_config, module = _paligemma(policy_type, size, cameras,
                                                                             num_steps, {**common, "dtype": dtype})  # fmt: skip

        def make(cls, config):
            with backbone_sizes(module, PALIGEMMA_SIZES[size]):
                return cls(config)

    torch.manual_seed(0)
    base = make(base_cls, base_config)
    pruned = make(pruned_cls, pruned_config)
    pruned.load_state_dict(base.state_dict(), strict=True)
    base, pruned = base.to(device).eval(), pruned.to(device).eval()
    return BenchModels(base, pruned, _inputs(policy_type, pruned, cameras, device, prompt_tokens),
                       _vision_flops(policy_type, pruned, cameras), num_steps)  # fmt: skip


def _features(cameras: int, image_size: int):
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size))
              for i in range(cameras)}  # fmt: skip
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (7,))
    return dict(input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))})


def _paligemma(policy_type: str, size: str, cameras: int, num_steps: int, common: dict):
    if policy_type == "pi0":
        from lerobot.policies.pi0 import modeling_pi0 as module
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as BaseConfig
        from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch as Base

        from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config as Config

        from .backbones.paligemma import PrunedPI0Pytorch as Pruned
    else:
        from lerobot.policies.pi05 import modeling_pi05 as module
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as BaseConfig
        from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch as Base

        from lerobot_policy_prune.pruned_pi05.configuration_pruned_pi05 import PrunedPI05Config as Config

        from .backbones.paligemma import PrunedPI05Pytorch as Pruned
    fields = dict(**_features(cameras, 224), num_inference_steps=num_steps, push_to_hub=False, **common)
    return Base, Pruned, BaseConfig(**fields), Config(**fields, arch_override=PALIGEMMA_SIZES[size]), module


def _smolvla(size: str, cameras: int, num_steps: int, common: dict):
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching

    from lerobot_policy_prune.pruned_smolvla.configuration_pruned_smolvla import PrunedSmolVLAConfig

    from .backbones.smolvlm import PrunedVLAFlowMatching
    from .tiny_smolvla import make_tiny_smolvlm

    text, vision = SMOLVLM_SIZES[size]
    folder = make_tiny_smolvlm(tempfile.mkdtemp(prefix=f"lerobot_prune_bench_smolvlm_{size}_"), text, vision)
    fields = dict(**_features(cameras, 512), num_steps=num_steps, vlm_model_name=str(folder),
                  load_vlm_weights=False, push_to_hub=False, **common)  # fmt: skip
    return VLAFlowMatching, PrunedVLAFlowMatching, SmolVLAConfig(**fields), PrunedSmolVLAConfig(**fields)


def _inputs(policy_type: str, model, cameras: int, device: str, prompt_tokens: int = 20) -> dict:
    """Fixed `sample_actions` keyword arguments for one sample; the prompt has `prompt_tokens` real tokens."""
    g = torch.Generator().manual_seed(0)
    config = model.config
    size = 512 if policy_type == "smolvla" else 224
    images = [(torch.rand(1, 3, size, size, generator=g) * 2 - 1).to(device) for _ in range(cameras)]
    img_masks = [torch.ones(1, dtype=torch.bool, device=device) for _ in range(cameras)]
    length = config.tokenizer_max_length
    tokens = torch.randint(4, 200, (1, length), generator=g)
    masks = torch.arange(length)[None] < min(prompt_tokens, length)
    tokens = tokens.masked_fill(~masks, 0).to(device)
    masks = masks.to(device)
    noise = torch.randn(1, config.chunk_size, config.max_action_dim, generator=g).to(device)
    if policy_type == "pi05":
        return dict(images=images, img_masks=img_masks, tokens=tokens, masks=masks, noise=noise)
    state = torch.randn(1, config.max_state_dim, generator=g).to(device)
    return dict(images=images, img_masks=img_masks, lang_tokens=tokens, lang_masks=masks, state=state,
                noise=noise)  # fmt: skip


def _vision_flops(policy_type: str, model, cameras: int) -> int:
    """Vision tower and projector FLOPs per sample (the part pruning never changes)."""
    if policy_type == "smolvla":
        vlm = model.vlm_with_expert.config
        vision, text_width = vlm.vision_config, vlm.text_config.hidden_size
        out_tokens = model.tokens_per_camera
        proj_in = vision.hidden_size * vlm.scale_factor**2
    else:
        paligemma = model.paligemma_with_expert.paligemma.config
        vision, text_width = paligemma.vision_config, paligemma.text_config.hidden_size
        out_tokens, proj_in = model.tokens_per_camera, vision.hidden_size
    tower = vit_flops(vision.hidden_size, vision.intermediate_size, vision.num_hidden_layers,
                      (vision.image_size // vision.patch_size) ** 2, vision.patch_size)  # fmt: skip
    return cameras * (tower + 2 * out_tokens * proj_in * text_width)
