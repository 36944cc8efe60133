"""`pruned_smolvla`: LeRobot's SmolVLA config plus a `pruning` block."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

import lerobot_prune  # noqa: F401  (registers the strategies)
from lerobot_prune.config import PruningConfig, check_empty_cameras
from lerobot_prune.strategies.none import NoPruningConfig

from ..saved_config import adopt_saved_config

logger = logging.getLogger(__name__)


@PreTrainedConfig.register_subclass("pruned_smolvla")
@dataclass
class PrunedSmolVLAConfig(SmolVLAConfig):
    """SmolVLA with visual-token pruning. Every `SmolVLAConfig` field keeps its meaning and default.

    Only image tokens are pruned; the special image tokens, the language tokens and the state token
    (SmolVLA puts the state in the prefix) are always kept.

    Args:
        pruning: The token-selection strategy (`--policy.pruning.type=fastv --policy.pruning.keep_ratio=0.25`).
    """

    pruning: PruningConfig = field(default_factory=NoPruningConfig)

    def __post_init__(self):
        if adopt_saved_config(self):  # --policy.type=... --policy.pretrained_path=<checkpoint>
            return
        check_empty_cameras(self.empty_cameras)
        super().__post_init__()
        self.pruning.validate_for_model(smolvla_vlm_depth(self))


def smolvla_vlm_depth(config: SmolVLAConfig) -> int:
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
