"""SmolVLA's VLM and vision-tower depths, read from the SmolVLM config its `vlm_model_name` names."""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def vlm_depth(config) -> int:
    """VLM layers the model runs: the text model's depth, cut to `num_vlm_layers` when that is > 0.

    Reads the VLM's config from `vlm_model_name` (local folder or Hub); if it cannot be read, the depth is
    taken as `num_vlm_layers` (the model build reads the same config and fails with its own error).
    """
    from transformers import AutoConfig

    check_local_vlm(config.vlm_model_name)
    try:
        depth = AutoConfig.from_pretrained(config.vlm_model_name).text_config.num_hidden_layers
    except (OSError, ValueError) as err:
        if config.num_vlm_layers <= 0:
            raise ValueError(
                f"Cannot read the VLM config of vlm_model_name={config.vlm_model_name!r} ({err}); "
                "its depth is needed to check the pruning layers."
            ) from err
        logger.warning("Could not read %s (%s); assuming %d VLM layers.", config.vlm_model_name, err,
                       config.num_vlm_layers)  # fmt: skip
        return config.num_vlm_layers
    return min(depth, config.num_vlm_layers) if config.num_vlm_layers > 0 else depth


def vision_depth(config) -> int | None:
    """Layers of the SmolVLM vision tower, or None when the VLM config cannot be read (`vlm_depth` has
    already warned or raised)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(config.vlm_model_name).vision_config.num_hidden_layers
    except (OSError, ValueError):
        return None


def check_local_vlm(name: str) -> None:
    """Refuses a `vlm_model_name` that is a path (absolute, `./…`, or deeper than a Hub `org/name` id) but no
    folder, before the model build asks the Hub for it; relative paths are read from the working directory."""
    looks_local = Path(name).is_absolute() or name.startswith(".") or name.count("/") >= 2
    if looks_local and not Path(name).is_dir():
        raise ValueError(
            f"vlm_model_name={name!r} is a path but not a folder (relative paths are read from the working "
            f"directory, {Path.cwd()}); run from the folder it is relative to (for the committed checkpoints, "
            "the repository root) or pass --policy.vlm_model_name=<SmolVLM folder or Hub id>."
        )
