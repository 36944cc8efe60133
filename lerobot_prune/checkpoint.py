"""Checkpoint files: resolving weights and checking them against a config before any model is built."""

from __future__ import annotations

import re
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from .backbones.arch import vlm_depth

WEIGHTS_NAME = "model.safetensors"
SIGLIP_SO400M_WIDTH = 1152


def resolve_weights(pretrained: str | Path, **hub_kwargs) -> Path:
    """Path of `model.safetensors` in a local folder or a Hub repo; raises instead of returning None."""
    folder = Path(pretrained)
    if folder.is_dir():
        path = folder / WEIGHTS_NAME
        if not path.is_file():
            present = sorted(p.name for p in folder.iterdir())
            raise FileNotFoundError(
                f"{folder} has no {WEIGHTS_NAME} (it holds {present}). A policy checkpoint needs its weights; "
                "refusing to build a randomly initialised policy."
            )
        return path
    from transformers.utils import cached_file

    try:
        return Path(cached_file(str(pretrained), WEIGHTS_NAME, **hub_kwargs))
    except Exception as err:
        raise FileNotFoundError(
            f"Could not get {WEIGHTS_NAME} of {pretrained!r} (not a local folder; Hub lookup failed: {err}). "
            "Refusing to build a randomly initialised policy."
        ) from err


def expected_sizes(config) -> dict[str, int]:
    """The sizes `check_architecture` compares, as the config describes them."""
    from lerobot.policies.pi0.modeling_pi0 import get_gemma_config

    arch = getattr(config, "arch_override", None)
    if arch is not None:
        return {"vlm width": arch["width"], "vlm depth": arch["depth"],
                "expert width": arch["expert_width"], "vision width": arch["vision_width"]}  # fmt: skip
    vlm, expert = get_gemma_config(config.paligemma_variant), get_gemma_config(config.action_expert_variant)
    return {"vlm width": vlm.width, "vlm depth": vlm_depth(config.paligemma_variant, None),
            "expert width": expert.width, "vision width": SIGLIP_SO400M_WIDTH}  # fmt: skip


def weight_sizes(path: Path) -> dict[str, int]:
    """Reads the same sizes from a safetensors header (no tensor is loaded)."""
    sizes: dict[str, int] = {}
    layers = set()
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118  (safe_open has no __iter__)
            if m := re.search(r"paligemma\.model\.language_model\.layers\.(\d+)\.", key):
                layers.add(int(m.group(1)))
            # mlp.down_proj is [width, mlp]; the norms differ between π0 (RMS) and π0.5 (adaRMS).
            if key.endswith("paligemma.model.language_model.layers.0.mlp.down_proj.weight"):
                sizes["vlm width"] = f.get_slice(key).get_shape()[0]
            elif key.endswith("gemma_expert.model.layers.0.mlp.down_proj.weight"):
                sizes["expert width"] = f.get_slice(key).get_shape()[0]
            elif key.endswith("vision_tower.vision_model.embeddings.patch_embedding.weight"):
                sizes["vision width"] = f.get_slice(key).get_shape()[0]
    if layers:
        sizes["vlm depth"] = max(layers) + 1
    return sizes


def check_architecture(path: Path, config) -> None:
    """Raises if the weights in `path` do not have the sizes `config` describes (π0/π0.5 or SmolVLA)."""
    if hasattr(config, "vlm_model_name"):
        from .checkpoint_smolvla import check_smolvla_architecture

        return check_smolvla_architecture(path, config)
    found, expected = weight_sizes(path), expected_sizes(config)
    if not found:
        raise ValueError(f"{path} holds no π0/π0.5 weights (no PaliGemma layers found).")
    diff = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: {w} in the weights vs {c} in the config" for k, (w, c) in diff.items())
        raise ValueError(
            f"The weights in {path} do not match the configured architecture ({detail}). "
            "Check paligemma_variant / action_expert_variant / arch_override of the checkpoint's config."
        )


def load_checked_state_dict(pretrained: str | Path, config, **hub_kwargs) -> dict[str, Tensor]:
    path = resolve_weights(pretrained, **hub_kwargs)
    check_architecture(path, config)
    return load_file(str(path))
