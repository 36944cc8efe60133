"""π0 / π0.5 weights against their config: the sizes in a safetensors header (no tensor is loaded)."""

from __future__ import annotations

import re
from pathlib import Path

from safetensors import SafetensorError, safe_open

from .arch import vlm_depth

SIGLIP_SO400M_WIDTH = 1152


# SigLIP-So400m (π0/π0.5's vision tower) and PaliGemma's vocabulary, as LeRobot builds them.
SIGLIP_SO400M = {"vision width": SIGLIP_SO400M_WIDTH, "vision depth": 27, "vision mlp": 4304}
PALIGEMMA_VOCAB = 257152
# Sizes every π0/π0.5 checkpoint has keys for; the others are compared when their keys are present.
REQUIRED_SIZES = ("vlm width", "vlm depth", "expert width", "vision width")


def expected_sizes(config) -> dict[str, int]:
    """The sizes `check_architecture` compares, as the config describes them (every shape-determining
    field: widths, depths, MLP sizes, attention projection sizes, vocabulary)."""
    from lerobot.policies.pi0.modeling_pi0 import get_gemma_config

    arch = getattr(config, "arch_override", None)
    if arch is not None:
        q, kv = arch["num_heads"] * arch["head_dim"], arch["num_kv_heads"] * arch["head_dim"]
        return {"vlm width": arch["width"], "vlm depth": arch["depth"], "vlm mlp": arch["mlp_dim"],
                "vlm q size": q, "vlm kv size": kv, "expert width": arch["expert_width"],
                "expert depth": arch["depth"], "expert mlp": arch["expert_mlp_dim"], "expert q size": q,
                "expert kv size": kv, "vision width": arch["vision_width"], "vision depth": arch["vision_depth"],
                "vision mlp": arch["vision_mlp_dim"], "vocab size": arch["vocab_size"]}  # fmt: skip
    vlm, expert = get_gemma_config(config.paligemma_variant), get_gemma_config(config.action_expert_variant)
    return {"vlm width": vlm.width, "vlm depth": vlm_depth(config.paligemma_variant, None), "vlm mlp": vlm.mlp_dim,
            "vlm q size": vlm.num_heads * vlm.head_dim, "vlm kv size": vlm.num_kv_heads * vlm.head_dim,
            "expert width": expert.width, "expert depth": expert.depth, "expert mlp": expert.mlp_dim,
            "expert q size": expert.num_heads * expert.head_dim,
            "expert kv size": expert.num_kv_heads * expert.head_dim, **SIGLIP_SO400M,
            "vocab size": PALIGEMMA_VOCAB}  # fmt: skip


_VLM = "paligemma.model.language_model."
_EXPERT = "gemma_expert.model."
_VISION = "vision_tower.vision_model."
# key suffix -> ((size name, shape dim), ...)
_SHAPES = {
    _VLM + "layers.0.mlp.down_proj.weight": (("vlm width", 0), ("vlm mlp", 1)),
    _VLM + "layers.0.self_attn.q_proj.weight": (("vlm q size", 0),),
    _VLM + "layers.0.self_attn.k_proj.weight": (("vlm kv size", 0),),
    _VLM + "embed_tokens.weight": (("vocab size", 0),),
    _EXPERT + "layers.0.mlp.down_proj.weight": (("expert width", 0), ("expert mlp", 1)),
    _EXPERT + "layers.0.self_attn.q_proj.weight": (("expert q size", 0),),
    _EXPERT + "layers.0.self_attn.k_proj.weight": (("expert kv size", 0),),
    _VISION + "embeddings.patch_embedding.weight": (("vision width", 0),),
    _VISION + "encoder.layers.0.mlp.fc1.weight": (("vision mlp", 0),),
}
_DEPTHS = {
    "vlm depth": _VLM + "layers.",
    "expert depth": _EXPERT + "layers.",
    "vision depth": _VISION + "encoder.layers.",
}


def weight_sizes(path: Path) -> dict[str, int]:
    """Reads the same sizes from a safetensors header (no tensor is loaded)."""
    sizes: dict[str, int] = {}
    layers: dict[str, set[int]] = {name: set() for name in _DEPTHS}
    try:
        with safe_open(str(path), framework="pt") as f:
            for key in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
                for name, prefix in _DEPTHS.items():
                    if m := re.search(re.escape(prefix) + r"(\d+)\.", key):
                        layers[name].add(int(m.group(1)))
                for suffix, dims in _SHAPES.items():
                    if key.endswith(suffix):
                        shape = f.get_slice(key).get_shape()
                        sizes.update({name: shape[dim] for name, dim in dims})
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable safetensors file: {err}") from err
    sizes.update({name: max(found) + 1 for name, found in layers.items() if found})
    return sizes


def check_architecture(path: Path, config) -> None:
    """Raises if the weights in `path` do not have the sizes `config` (π0 / π0.5) describes."""
    found, expected = weight_sizes(path), expected_sizes(config)
    if not found:
        raise ValueError(f"{path} holds no π0/π0.5 weights (no PaliGemma layers found).")
    diff = {k: (found.get(k), v) for k, v in expected.items()
            if found.get(k) != v and (k in REQUIRED_SIZES or k in found)}  # fmt: skip
    if diff:
        detail = ", ".join(f"{k}: {w} in the weights vs {c} in the config" for k, (w, c) in diff.items())
        raise ValueError(
            f"The weights in {path} do not match the configured architecture ({detail}). "
            "Check paligemma_variant / action_expert_variant / arch_override of the checkpoint's config "
            "(arch_override keys: width, depth, mlp_dim, num_heads x head_dim, num_kv_heads x head_dim, "
            "expert_width, expert_mlp_dim, vision_width, vision_depth, vision_mlp_dim, vocab_size)."
        )
