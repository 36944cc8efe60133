"""SmolVLA for `lerobot-prune bench` at four sizes: tiny (tests), mid (CPU-sized), scaled (full proportions at
1/8 of the FLOPs) and full (SmolVLM2-500M, first 16 of 32 text layers, with its 0.75-wide expert)."""

from __future__ import annotations

import tempfile

import torch

from ..bench_parts import BenchParts, bench_features
from .tiny import make_tiny_smolvlm

IMAGE_SIZE = 512
# SmolVLM2-500M-Video-Instruct's published sizes (SmolLM2-360M text model, SigLIP-B/16 at 512 px).
SMOLVLM2_500M_TEXT = {"hidden_size": 960, "intermediate_size": 2560, "num_hidden_layers": 32,
                      "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 64, "vocab_size": 49280}  # fmt: skip
SMOLVLM2_500M_VISION = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                        "num_attention_heads": 12}  # fmt: skip
SMOLVLM_MID_TEXT = {"hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 8,
                    "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 64}  # fmt: skip
# SmolVLM2-500M at half of every width and half of every depth (the 16 text layers SmolVLA runs -> 8; patches,
# tokens and heads unchanged): the vision tower keeps its full-size share (~77 % of a 3-camera call) at 1/8.
SMOLVLM_SCALED_TEXT = {"hidden_size": 480, "intermediate_size": 1280, "num_hidden_layers": 8,
                       "num_attention_heads": 15, "num_key_value_heads": 5, "head_dim": 32}  # fmt: skip
SMOLVLM_SCALED_VISION = {"hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6,
                         "num_attention_heads": 6}  # fmt: skip
SMOLVLM_SIZES = {
    "tiny": ({}, {}),
    "mid": (SMOLVLM_MID_TEXT, {}),
    "scaled": (SMOLVLM_SCALED_TEXT, SMOLVLM_SCALED_VISION),
    "full": (SMOLVLM2_500M_TEXT, SMOLVLM2_500M_VISION),
}


def bench_parts(policy_type: str, size: str, cameras: int, num_steps: int, pruned_config_class: type,
                common: dict, dtype: str) -> BenchParts:  # fmt: skip
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import VLAFlowMatching

    from .model import PrunedVLAFlowMatching

    text, vision = SMOLVLM_SIZES[size]
    folder = make_tiny_smolvlm(tempfile.mkdtemp(prefix=f"lerobot_prune_bench_smolvlm_{size}_"), text, vision)
    fields = dict(**bench_features(cameras, IMAGE_SIZE), num_steps=num_steps, vlm_model_name=str(folder),
                  load_vlm_weights=False, push_to_hub=False, **common)  # fmt: skip

    def build(cls, config):
        model = cls(config)
        if dtype == "bfloat16":  # as SmolVLA's pretrained VLM loads (`torch_dtype="bfloat16"`)
            model.vlm_with_expert.vlm.to(torch.bfloat16)
        return model

    return BenchParts(
        VLAFlowMatching, PrunedVLAFlowMatching, SmolVLAConfig(**fields), pruned_config_class(**fields), build,
        IMAGE_SIZE, takes_state=True, vision_dims=vision_dims,
        vlm_wrapper=lambda model: model.vlm_with_expert,
    )  # fmt: skip


def vision_dims(model) -> tuple:
    vlm = model.vlm_with_expert.config
    vision = vlm.vision_config
    return (
        vision,
        vlm.text_config.hidden_size,
        model.tokens_per_camera,
        vision.hidden_size * vlm.scale_factor**2,
    )
