"""`pruned_smolvla`: LeRobot's SmolVLA config plus a `pruning` block."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import PreTrainedConfig
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig

import lerobot_prune  # noqa: F401  (registers the strategies)
from lerobot_prune.config import PruningConfig, check_empty_cameras
from lerobot_prune.families.smolvlm.arch import vision_depth, vlm_depth
from lerobot_prune.strategies.none import NoPruningConfig

from ..saved_config import adopt_saved_config


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
        self.pruning.validate_for_model(vlm_depth(self))
        if (depth := vision_depth(self)) is not None:
            self.pruning.validate_for_vision(depth)
