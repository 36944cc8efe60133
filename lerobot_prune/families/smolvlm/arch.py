"""SmolVLA's VLM depth, read from the SmolVLM config its `vlm_model_name` names."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def vlm_depth(config) -> int:
    """VLM layers the model runs: the text model's depth, cut to `num_vlm_layers` when that is > 0.

    Reads the VLM's config from `vlm_model_name` (local folder or Hub); if it cannot be read, the depth is
    taken as `num_vlm_layers` (the model build reads the same config and fails with its own error).
    """
    from transformers import AutoConfig

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
