"""`PrunedSmolVLAPolicy`: LeRobot's `SmolVLAPolicy` running a token-pruning strategy (see `pruned_policy`).

SmolVLA's `select_action` predicts through `_get_action_chunk` (not `predict_action_chunk`), so the
per-chunk work of `PrunedPolicyMixin.predict_action_chunk` (camera check, state for the strategy,
timing, report) happens in `_get_action_chunk` here, once per predicted chunk on both paths.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.utils.constants import ACTION, OBS_STATE
from lerobot.utils.import_utils import require_package
from torch import Tensor

from lerobot_prune.backbones.smolvlm import PrunedVLAFlowMatching
from lerobot_prune.checkpoint import check_architecture

from ..pruned_policy import PrunedPolicyMixin
from .configuration_pruned_smolvla import PrunedSmolVLAConfig


class PrunedSmolVLAPolicy(PrunedPolicyMixin, SmolVLAPolicy):
    """SmolVLA with visual-token pruning (see `PrunedSmolVLAConfig.pruning`)."""

    config_class = PrunedSmolVLAConfig
    name = "pruned_smolvla"
    base_type = "smolvla"
    model_class = PrunedVLAFlowMatching

    def __init__(self, config: PrunedSmolVLAConfig, **kwargs):
        require_package("transformers", extra="smolvla")
        super().__init__(config, **kwargs)

    def actions_queued(self) -> bool:
        return len(self._queues[ACTION]) > 0

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        return SmolVLAPolicy.predict_action_chunk(self, batch, noise, **kwargs)

    def _get_action_chunk(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        self._check_cameras(batch)
        if OBS_STATE in batch:
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=True)
        start = time.perf_counter()
        actions = super()._get_action_chunk(batch, noise, **kwargs)
        if actions.is_cuda:
            torch.cuda.synchronize(actions.device)
        self.report.add_call(self.model.last_trace, time.perf_counter() - start, *self.model.layer_dims)
        return actions

    def _preprocess_images(self, batch: dict[str, Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """π0's name for `prepare_images` (used by `lerobot-prune calibrate`)."""
        return self.prepare_images(batch)

    @staticmethod
    def check_weights(weights: Path, config) -> None:
        """Raises if the weights file does not fit `config`'s SmolVLM / expert sizes."""
        check_architecture(weights, config)

    def remap_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """SmolVLA checkpoints are saved from the policy (keys start with `model.`); bare model keys get it."""
        return {k if k.startswith("model.") else f"model.{k}": v for k, v in state_dict.items()}
