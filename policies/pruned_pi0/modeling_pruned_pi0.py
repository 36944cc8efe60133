"""`PrunedPI0Policy`: LeRobot's `PI0Policy` running a token-pruning strategy.

Modifications to `PI0Policy`:
    * `self.model` is `PruningAwarePI0Pytorch` (identical state-dict keys, so π0 checkpoints load strictly);
    * `forward` (training) applies the strategy when `pruning.in_training` and adds `pruning/*` metrics,
      which `lerobot-train` logs as `train/pruning/*`; a training dataset is checked against the strategy;
    * `reset()` also clears the strategy's per-episode state and closes an episode in the report;
    * `predict_action_chunk` checks camera names, times the call and records it in `self.report`;
    * `from_pretrained` raises when weights are missing or do not fit the architecture, instead of
      returning a randomly initialised model.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch
from lerobot.configs import PreTrainedConfig
from lerobot.policies.pi0.modeling_pi0 import PI0Policy
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import OBS_IMAGES, OBS_STATE
from lerobot.utils.import_utils import require_package
from torch import Tensor

from lerobot_prune.backbones.training import PruningAwarePI0Pytorch
from lerobot_prune.checkpoint import load_checked_state_dict
from lerobot_prune.metrics import PruningReport
from lerobot_prune.registry import build_pruner
from lerobot_prune.reporting import register_report

from .configuration_pruned_pi0 import PrunedPI0Config


class PrunedPI0Policy(PI0Policy):
    """π0 with visual-token pruning (see `PrunedPI0Config.pruning`)."""

    config_class = PrunedPI0Config
    name = "pruned_pi0"

    def __init__(self, config: PrunedPI0Config, **kwargs):
        require_package("transformers", extra="pi")
        PreTrainedPolicy.__init__(self, config)  # PI0Policy.__init__ would build a second, unpruned model
        config.validate_features()
        if kwargs.get("dataset_meta") is not None:  # lerobot-train passes the training dataset's metadata
            config.pruning.validate_for_dataset(kwargs["dataset_meta"].features)
        config.pruning.validate_for_policy(config)
        self.config = config
        self.init_rtc_processor()
        self.model = PruningAwarePI0Pytorch(
            config, rtc_processor=self.rtc_processor, pruner=build_pruner(config.pruning)
        )
        self.model.pruner.bind(config, None, self.model.backbone_info)
        if config.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.to(config.device)
        self.report = PruningReport(
            strategy=config.pruning.type,
            settings=_settings(config),
            camera_names=list(config.image_features),
        )
        register_report(self.report, config.pruning)
        self.reset()

    def reset(self):
        super().reset()
        if hasattr(self, "report"):
            self.model.reset_pruning()
            self.report.end_episode()

    def forward(self, batch: dict[str, Tensor], reduction: str = "mean") -> tuple[Tensor, dict]:
        self.model.check_training()
        loss, loss_dict = super().forward(batch, reduction=reduction)
        return loss, {**loss_dict, **self.model.training_metrics}

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor]) -> Tensor:
        if len(self._action_queue) > 0 and OBS_STATE in batch:
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=False)
        return super().select_action(batch)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        self._check_cameras(batch)
        if OBS_STATE in batch:
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=True)
        start = time.perf_counter()
        actions = super().predict_action_chunk(batch, **kwargs)
        if actions.is_cuda:
            torch.cuda.synchronize(actions.device)
        self.report.add_call(self.model.last_trace, time.perf_counter() - start, *self.model.layer_dims)
        return actions

    def _check_cameras(self, batch: dict[str, Tensor]) -> None:
        known = list(self.config.image_features)
        given = [k for k in batch if k.startswith(OBS_IMAGES) and not k.endswith("_is_pad")]
        unknown = [k for k in given if k not in known]
        missing = [k for k in known if k not in batch]
        if unknown and (len(missing) == len(known) or len(unknown) <= len(missing)):
            raise ValueError(
                f"Camera(s) {unknown} are not cameras of this policy; its cameras are {known} "
                f"({missing} missing from the batch). Map names with --rename_map, e.g. "
                f'--rename_map=\'{{"{unknown[0]}": "{missing[0] if missing else known[0]}"}}\'.'
            )

    @classmethod
    def from_pretrained(cls, pretrained_name_or_path: str | Path, *, config: PreTrainedConfig | None = None,
                        strict: bool = True, **kwargs) -> PrunedPI0Policy:  # fmt: skip
        """Loads a `pruned_pi0` (or π0-keyed) checkpoint; raises if its weights are absent or mismatched."""
        hub_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _HUB_KWARGS}
        if config is None:
            config = PreTrainedConfig.from_pretrained(pretrained_name_or_path, **hub_kwargs)
        if not isinstance(config, PrunedPI0Config):
            raise TypeError(
                f"{pretrained_name_or_path} holds a {type(config).__name__} ({config.type!r}), not pruned_pi0. "
                "Convert it first: lerobot-prune convert --base <checkpoint> --out <dir>."
            )
        state_dict = load_checked_state_dict(pretrained_name_or_path, config, **hub_kwargs)
        policy = cls(config, **kwargs)
        state_dict = policy._fix_pytorch_state_dict_keys(state_dict, config)
        state_dict = {k if k.startswith("model.") else f"model.{k}": v for k, v in state_dict.items()}
        policy.load_state_dict(state_dict, strict=strict)
        if Path(pretrained_name_or_path).is_dir():
            policy.model.pruner.bind(config, Path(pretrained_name_or_path), policy.model.backbone_info)
        policy.to(config.device)
        policy.eval()
        return policy


_HUB_KWARGS = {
    "force_download",
    "resume_download",
    "proxies",
    "token",
    "cache_dir",
    "local_files_only",
    "revision",
}


def _settings(config: PrunedPI0Config) -> dict:
    return {k: v for k, v in asdict(config.pruning).items() if k not in ("fallback",)}
