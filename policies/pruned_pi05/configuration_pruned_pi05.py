"""`pruned_pi05`: LeRobot's π0.5 config plus a `pruning` block."""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi05.configuration_pi05 import PI05Config

import lerobot_prune  # noqa: F401  (registers the strategies)
from lerobot_prune.config import PruningConfig, check_empty_cameras
from lerobot_prune.families.paligemma.arch import validate_arch, vision_depth, vlm_depth
from lerobot_prune.strategies.none import NoPruningConfig

from ..pruned_pi0.configuration_pruned_pi0 import PALIGEMMA_TOKENIZER
from ..saved_config import adopt_saved_config


@PreTrainedConfig.register_subclass("pruned_pi05")
@dataclass
class PrunedPI05Config(PI05Config):
    """π0.5 with visual-token pruning. Every `PI05Config` field keeps its meaning and default.

    π0.5 writes the discretised state into the language prompt; strategies only ever remove visual
    tokens, so the state is never pruned.

    Args:
        pruning: The token-selection strategy (`--policy.pruning.type=fastv --policy.pruning.keep_ratio=0.25`).
        tokenizer_name: Hub id or local folder of the PaliGemma tokenizer.
        arch_override: Backbone sizes other than Gemma-2B/300M + SigLIP-So400m (tiny test models); see
            `lerobot_prune.families.paligemma.arch.ARCH_KEYS`. None for real checkpoints.
    """

    pruning: PruningConfig = field(default_factory=NoPruningConfig)
    tokenizer_name: str = PALIGEMMA_TOKENIZER
    arch_override: dict[str, int] | None = None

    def __post_init__(self):
        if adopt_saved_config(self):  # --policy.type=... --policy.pretrained_path=<checkpoint>
            return
        check_empty_cameras(self.empty_cameras)
        super().__post_init__()
        validate_arch(self.arch_override)
        self.pruning.validate_for_model(vlm_depth(self.paligemma_variant, self.arch_override))
        self.pruning.validate_for_vision(vision_depth(self.arch_override))
