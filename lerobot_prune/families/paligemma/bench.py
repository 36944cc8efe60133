"""π0 / π0.5 for `lerobot-prune bench` at four sizes: tiny (tests), mid (CPU-sized, compute-bound), scaled (full
proportions at 1/12 of the FLOPs) and full (PaliGemma = Gemma-2B + SigLIP-So400m, Gemma-300M expert)."""

from __future__ import annotations

from ..bench_parts import BenchParts, bench_features
from .arch import TINY_ARCH, backbone_sizes

IMAGE_SIZE = 224
MID_ARCH = {
    "width": 512, "depth": 6, "mlp_dim": 2048, "num_heads": 8, "num_kv_heads": 1, "head_dim": 64,
    "expert_width": 256, "expert_mlp_dim": 1024, "vision_width": 128, "vision_depth": 1, "vision_heads": 2,
    "vision_mlp_dim": 256, "vocab_size": 1024,
}  # fmt: skip
# PaliGemma at half of every width and a third of every depth (patches, tokens and heads unchanged): each part
# keeps its full-size share of the FLOPs (the SigLIP tower ~15 % of a 3-camera call) at 1/12 of the total.
SCALED_ARCH = {
    "width": 1024, "depth": 6, "mlp_dim": 8192, "num_heads": 8, "num_kv_heads": 1, "head_dim": 128,
    "expert_width": 512, "expert_mlp_dim": 2048, "vision_width": 576, "vision_depth": 9, "vision_heads": 8,
    "vision_mlp_dim": 2152, "vocab_size": 1024,
}  # fmt: skip
PALIGEMMA_SIZES = {"tiny": TINY_ARCH, "mid": MID_ARCH, "scaled": SCALED_ARCH, "full": None}


def bench_parts(policy_type: str, size: str, cameras: int, num_steps: int, pruned_config_class: type,
                common: dict, dtype: str) -> BenchParts:  # fmt: skip
    if policy_type == "pi0":
        from lerobot.policies.pi0 import modeling_pi0 as module
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as BaseConfig
        from lerobot.policies.pi0.modeling_pi0 import PI0Pytorch as Base

        from .model import PrunedPI0Pytorch as Pruned
    else:
        from lerobot.policies.pi05 import modeling_pi05 as module
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as BaseConfig
        from lerobot.policies.pi05.modeling_pi05 import PI05Pytorch as Base

        from .model import PrunedPI05Pytorch as Pruned
    fields = dict(**bench_features(cameras, IMAGE_SIZE), num_inference_steps=num_steps, push_to_hub=False,
                  **common, dtype=dtype)  # fmt: skip
    arch = PALIGEMMA_SIZES[size]

    def build(cls, config):
        with backbone_sizes(module, arch):
            return cls(config)

    return BenchParts(
        Base, Pruned, BaseConfig(**fields), pruned_config_class(**fields, arch_override=arch), build,
        IMAGE_SIZE, takes_state=policy_type != "pi05", vision_dims=vision_dims,
        vlm_wrapper=lambda model: model.paligemma_with_expert,
    )  # fmt: skip


def vision_dims(model) -> tuple:
    paligemma = model.paligemma_with_expert.paligemma.config
    vision = paligemma.vision_config
    return vision, paligemma.text_config.hidden_size, model.tokens_per_camera, vision.hidden_size
