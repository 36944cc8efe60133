"""`PrunedSmolVLAPolicy`: LeRobot's `SmolVLAPolicy` running a token-pruning strategy (see `pruned_policy`).

Upstream SmolVLA's `select_action` predicts through `_get_action_chunk`, bypassing
`predict_action_chunk`; here it calls `predict_action_chunk`, so the per-chunk work of
`PrunedPolicyMixin.predict_action_chunk` (camera check, state for the strategy, timing, report) and
wrappers of it (`lerobot-prune calibrate`) see every chunk. `predict_action_chunk` itself runs
SmolVLA's batch preparation, so the actions are those of upstream `select_action`.
"""

from pathlib import Path

import torch
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
from lerobot.utils.constants import ACTION, OBS_STATE
from torch import Tensor

from lerobot_prune.families import check_architecture
from lerobot_prune.families.smolvlm.model import PrunedVLAFlowMatching

from ..pruned_policy import PrunedPolicyMixin
from .configuration_pruned_smolvla import PrunedSmolVLAConfig


class PrunedSmolVLAPolicy(PrunedPolicyMixin, SmolVLAPolicy):
    """SmolVLA with visual-token pruning (see `PrunedSmolVLAConfig.pruning`)."""

    config_class = PrunedSmolVLAConfig
    name = "pruned_smolvla"
    base_type = "smolvla"
    model_class = PrunedVLAFlowMatching

    # LeRobot's policy-class contract reads this annotation (tests/policies/test_discovery.py).
    def __init__(self, config: PrunedSmolVLAConfig, **kwargs):
        super().__init__(config, **kwargs)

    def actions_queued(self) -> bool:
        return len(self._queues[ACTION]) > 0

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], noise: Tensor | None = None, **kwargs) -> Tensor:
        """SmolVLA's `select_action`, predicting each chunk through `predict_action_chunk`."""
        if self._rtc_enabled():
            raise ValueError("RTC is not supported by select_action; use predict_action_chunk.")
        if OBS_STATE in batch and self.actions_queued():
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=False)
        if not self.actions_queued():
            actions = self.predict_action_chunk(batch, noise=noise)
            self._queues[ACTION].extend(actions.transpose(0, 1)[: self.config.n_action_steps])
        return self._queues[ACTION].popleft()

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
