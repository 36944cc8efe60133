"""SmolVLA's architecture check: the sizes in a safetensors header against the config (no tensor loaded)."""

from __future__ import annotations

import re
from pathlib import Path

from safetensors import safe_open

from .arch import vlm_depth

_TEXT = "vlm_with_expert.vlm.model.text_model.layers."
_EXPERT = "vlm_with_expert.lm_expert.layers.0.mlp.down_proj.weight"
_VISION = "vlm_with_expert.vlm.model.vision_model.embeddings.patch_embedding.weight"


def expected_sizes(config) -> dict[str, int]:
    """The sizes the model built from `config` has (reads the VLM config of `vlm_model_name`)."""
    from transformers import AutoConfig

    vlm = AutoConfig.from_pretrained(config.vlm_model_name)
    width = vlm.text_config.hidden_size
    return {"vlm width": width, "vlm depth": vlm_depth(config),
            "expert width": int(width * config.expert_width_multiplier),
            "vision width": vlm.vision_config.hidden_size}  # fmt: skip


def weight_sizes(path: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    layers = set()
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
            if m := re.search(re.escape(_TEXT) + r"(\d+)\.", key):
                layers.add(int(m.group(1)))
            if key.endswith(_TEXT + "0.mlp.down_proj.weight"):
                sizes["vlm width"] = f.get_slice(key).get_shape()[0]
            elif key.endswith(_EXPERT):
                sizes["expert width"] = f.get_slice(key).get_shape()[0]
            elif key.endswith(_VISION):
                sizes["vision width"] = f.get_slice(key).get_shape()[0]
    if layers:
        sizes["vlm depth"] = max(layers) + 1
    return sizes


def check_architecture(path: Path, config) -> None:
    """Raises if the weights in `path` do not have the sizes `config` (SmolVLA) describes."""
    found = weight_sizes(path)
    if not found:
        raise ValueError(f"{path} holds no SmolVLA weights (no SmolVLM text layers found).")
    expected = expected_sizes(config)
    diff = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: {w} in the weights vs {c} in the config" for k, (w, c) in diff.items())
        raise ValueError(
            f"The weights in {path} do not match the configured architecture ({detail}). Check "
            f"vlm_model_name={config.vlm_model_name!r} / num_vlm_layers / expert_width_multiplier of the "
            "checkpoint's config."
        )
