"""What every `pruned_*` policy adds to its LeRobot base policy (π0, π0.5, SmolVLA).

`PrunedPolicyMixin` goes before the upstream policy class (`class PrunedPI0Policy(PrunedPolicyMixin,
PI0Policy)`). The subclass names its adapter model in `model_class`; the adapter takes
`(config, rtc_processor=..., pruner=...)`, keeps the upstream state-dict keys and exposes `pruner`,
`last_trace`, `layer_dims`, `backbone_info` and `reset_pruning()`.

Modifications to the upstream policy:
    * `self.model` is the adapter, built by the upstream constructor in place of the upstream model
      (`upstream_builds`; base checkpoints load strictly);
    * `forward` (training) applies the strategy when `pruning.in_training` and adds `pruning/*` metrics,
      which `lerobot-train` logs as `train/pruning/*`; a training dataset is checked against the strategy;
    * `reset()` also clears the strategy's per-episode state and closes an episode in the report, and refuses
      LeRobot's threaded multi-task eval (`--env.max_parallel_tasks > 1`, see `lerobot_prune.threads`);
    * `select_action` / `predict_action_chunk` feed the state to the strategy, check the batch (camera names,
      layout, dtype, range, finite values, batch sizes), time the call and record it in `self.report`; NaN/inf
      actions raise, or with `pruning.fallback="full_vision"` the call is retried unpruned;
    * `from_pretrained` raises when weights are missing or do not fit the architecture, instead of
      returning a randomly initialised model.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import ClassVar

import torch
from lerobot.configs import PreTrainedConfig
from lerobot.configs.types import NormalizationMode
from lerobot.utils.constants import OBS_IMAGES, OBS_LANGUAGE_TOKENS, OBS_STATE
from safetensors.torch import load_file
from torch import Tensor

from lerobot_prune.batch_checks import NonFiniteActionError, check_observation, nonfinite_rows
from lerobot_prune.checkpoint import resolve_weights
from lerobot_prune.families import check_architecture
from lerobot_prune.metrics import PruningReport
from lerobot_prune.observe import notify_call
from lerobot_prune.registry import build_pruner
from lerobot_prune.reporting import register_report
from lerobot_prune.strategies.degenerate import degenerate_settings, warm_up_outlasted_episode
from lerobot_prune.threads import check_not_threaded_eval

logger = logging.getLogger(__name__)
_BUILD_LOCK = threading.Lock()
HUB_KWARGS = frozenset(
    {"force_download", "resume_download", "proxies", "token", "cache_dir", "local_files_only", "revision"}
)


class PrunedPolicyMixin:
    """Pruning on top of a LeRobot policy class (see the module docstring)."""

    model_class: ClassVar[type]
    base_type: ClassVar[str]  # the upstream policy type, e.g. "pi0"

    def __init__(self, config, **kwargs):
        dataset_meta = kwargs.get("dataset_meta")  # lerobot-train passes the training dataset's metadata
        with upstream_builds(self.model_class, partial(self._build_model, dataset_meta=dataset_meta)):
            super().__init__(config, **kwargs)
        self.model.pruner.bind(config, None, self.model.backbone_info)
        for warning in degenerate_settings(config.pruning, self.model.tokens_per_camera):
            logger.warning(warning)
        self._episode_calls, self._warned_warm_up = 0, False
        if dataset_meta is not None:  # built for training: a strategy that cannot train says so now
            self.model.check_training()
        self.model.to(config.device)
        self.report = PruningReport(
            strategy=config.pruning.type,
            settings={k: v for k, v in asdict(config.pruning).items() if k != "fallback"},
            camera_names=list(config.image_features),
        )
        register_report(self.report, config.pruning)
        self.reset()

    def _build_model(self, config, rtc_processor=None, dataset_meta=None):
        """What the upstream constructor calls for its model, after it validated the features: checks the
        strategy against them (and a training dataset's), then builds the adapter with the strategy."""
        if dataset_meta is not None:
            config.pruning.validate_for_dataset(dataset_meta.features)
        config.pruning.validate_for_policy(config)
        return self.model_class(config, rtc_processor=rtc_processor, pruner=build_pruner(config.pruning))

    def reset(self):
        check_not_threaded_eval()  # threads sharing this policy would mix per-episode strategy state
        super().reset()
        if hasattr(self, "report"):
            warms_up = getattr(self.model.pruner, "uses_history", False)  # VLA-Pruner's temporal history
            warning = warm_up_outlasted_episode(self.config.pruning, self._episode_calls, warms_up)
            if warning and not self._warned_warm_up:
                logger.warning(warning)
                self._warned_warm_up = True
            self._episode_calls = 0
            self.model.reset_pruning()
            self.report.end_episode()

    def forward(self, batch: dict[str, Tensor], *args, **kwargs) -> tuple[Tensor, dict]:
        self.model.check_training()
        loss, loss_dict = super().forward(batch, *args, **kwargs)
        return loss, {**loss_dict, **self.model.training_metrics}

    def actions_queued(self) -> bool:
        """Whether `select_action` will pop a queued action instead of predicting a chunk."""
        return len(self._action_queue) > 0

    @torch.no_grad()
    def select_action(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        if OBS_STATE in batch and self.actions_queued():
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=False)
        return super().select_action(batch, **kwargs)

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Tensor], **kwargs) -> Tensor:
        self._check_cameras(batch)
        self._check_observation(batch)
        if self.config.pruning.blind:
            batch = {
                k: torch.full_like(v, 0.5) if k in self.config.image_features else v for k, v in batch.items()
            }
        if OBS_STATE in batch:
            self.model.pruner.observe_state(batch[OBS_STATE], new_chunk=True)
        start = time.perf_counter()
        actions = super().predict_action_chunk(batch, **kwargs)
        if rows := nonfinite_rows(actions):
            actions = self._retry_full_vision(batch, rows, kwargs)
        if actions.is_cuda:
            torch.cuda.synchronize(actions.device)
        self.report.add_call(
            self.model.last_trace, time.perf_counter() - start, *self.model.layer_dims, self.model.vision_dims
        )
        self._episode_calls += 1
        notify_call(self, batch)
        return actions

    def _check_observation(self, batch: dict[str, Tensor]) -> None:
        state = self.config.input_features.get(OBS_STATE)
        check_observation(
            batch,
            image_channels={k: f.shape[0] for k, f in self.config.image_features.items()},
            state_key=OBS_STATE,
            state_dim=state.shape[0] if state is not None else None,
            batch_keys=(OBS_LANGUAGE_TOKENS,),
            unit_range_images=self.config.normalization_mapping.get("VISUAL") == NormalizationMode.IDENTITY,
        )

    def _retry_full_vision(self, batch: dict[str, Tensor], rows: list[int], kwargs: dict) -> Tensor:
        """NaN/inf actions never leave the policy: raise, or (`pruning.fallback="full_vision"`) rerun the
        call without pruning once and count it as a fallback call in the report."""
        pruner = self.model.pruner
        pruned = pruner is not None and not pruner.is_noop()
        if self.config.pruning.fallback != "full_vision" or not pruned:
            raise NonFiniteActionError(
                f"The policy produced NaN/inf actions for batch rows {rows} (pruning.type="
                f"{self.config.pruning.type!r}); they were not returned. Its inputs were finite, so check the "
                "weights"
                + ("." if not pruned else "; pruning.fallback=full_vision retries such calls unpruned.")
            )
        logger.warning("NaN/inf actions for rows %s with %r; retrying this call with full vision.", rows,
                       self.config.pruning.type)  # fmt: skip
        self.model.pruner = None
        try:
            actions = super().predict_action_chunk(batch, **kwargs)
        finally:
            self.model.pruner = pruner
        if rows := nonfinite_rows(actions):
            raise NonFiniteActionError(
                f"The policy produced NaN/inf actions for batch rows {rows} with pruning and again with full "
                "vision; they were not returned. Check the checkpoint's weights."
            )
        self.model.fallback_count += 1
        self.model.last_trace = dataclasses.replace(self.model.last_trace, fallback=True)
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
                        strict: bool = True, **kwargs):  # fmt: skip
        """Loads a checkpoint of this type; raises if its weights are absent or do not fit."""
        hub_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in HUB_KWARGS}
        if config is None:
            config = PreTrainedConfig.from_pretrained(pretrained_name_or_path, **hub_kwargs)
        if not isinstance(config, cls.config_class):
            raise TypeError(
                f"{pretrained_name_or_path} holds a {type(config).__name__} ({config.type!r}), not {cls.name}. "
                f"Convert it first: lerobot-prune convert --base={pretrained_name_or_path} --out=<dir>."
            )
        weights = resolve_weights(pretrained_name_or_path, **hub_kwargs)
        cls.check_weights(weights, config)
        state_dict = load_file(str(weights))
        policy = cls(config, **kwargs)
        state_dict = policy.remap_state_dict(state_dict)
        policy.load_state_dict(state_dict, strict=strict)
        if Path(pretrained_name_or_path).is_dir():
            policy.model.pruner.bind(config, Path(pretrained_name_or_path), policy.model.backbone_info)
        policy.to(config.device)
        policy.eval()
        return policy

    @staticmethod
    def check_weights(weights: Path, config) -> None:
        """Raises if the weights file does not fit `config`'s architecture (PaliGemma family here)."""
        check_architecture(weights, config)

    def remap_state_dict(self, state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
        """Upstream checkpoint keys -> this module's keys (π0 family: openpi fixes and the `model.` prefix)."""
        state_dict = self._fix_pytorch_state_dict_keys(state_dict, self.config)
        return {k if k.startswith("model.") else f"model.{k}": v for k, v in state_dict.items()}


@contextmanager
def upstream_builds(model_class: type, build) -> Iterator[None]:
    """Within this block, the upstream policy constructor builds its model with `build` instead of the
    upstream model class that `model_class` subclasses (its name in LeRobot's modeling module), so the
    policy is LeRobot's own `__init__` and the model is built once."""
    upstream = next(c for c in model_class.__mro__ if c.__module__.startswith("lerobot.policies."))
    module, name = sys.modules[upstream.__module__], upstream.__name__
    with _BUILD_LOCK:
        if getattr(module, name) is not upstream:
            raise RuntimeError(
                f"{module.__name__}.{name} is not LeRobot's {name}; cannot build {model_class}."
            )
        setattr(module, name, build)
        try:
            yield
        finally:
            setattr(module, name, upstream)
