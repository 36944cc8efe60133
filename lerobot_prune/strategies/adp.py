"""`adp`: text-driven pre-LLM pruning with per-camera quotas and an action-aware gate (methods_spec §5).

Scores are layer-0 query(text) . key(visual) logits (no RoPE, no softmax). The gate prunes a chunk only
when the end effector moved fast in the previous chunks (`ActionAwareGate`); motion is the measured
end-effector position in `observation.state` (as the policy receives it, i.e. normalised) or the
forward kinematics of the predicted delta-EEF actions.

Training (`select_for_training`): the gate follows an episode's motion, so every training frame gets the
gate open (pruned): the text-driven per-camera quota top-k at `keep_ratio`. The gate's state is neither
read nor written. The state slice the gate needs is still checked against the training dataset, since the
fine-tuned checkpoint gates at inference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..config import KeepRatioConfig, check_choice
from ..registry import register_strategy
from ..selection import TokenSelection
from .adp_gate import ActionAwareGate, fk_path_length, net_displacement, path_length
from .adp_quota import quota_table, quota_top_k, split_counts  # noqa: F401  (split_counts: its old path)
from .base import PruningView, TokenPruner

MOTION_SOURCES = ("eef_state", "action_fk")
DELTA_METHODS = ("net", "sum")


@dataclass
class ADPConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept while the gate prunes (paper: 0.5; sweep 0.3-0.7).
    split: Camera weights: one per camera, or two = first camera : each other camera's share (0.4 : 0.6).
    camera_weights: Weights by camera name (e.g. {"observation.images.wrist": 0.6, ...}); overrides split.
    preserve_positions: Keep original RoPE positions instead of renumbering (ADP renumbers).
    gate: Turn the action-aware gate on; off = static pruning on every call ("w/o D" ablation).
    decision: Gate rule, "adjacent" (extrema, paper default) or "mean".
    extrema_window: L_w of the adjacent-extrema rule (cold start = max(3, L_w) full windows).
    adjacent_last_state: Between the extrema keep the previous state instead of pruning.
    mean_variant: "cumulative" (paper) or "ema0.5" (code) for decision="mean".
    limit_consecutive: Force one full window after `max_consecutive` pruned windows.
    max_consecutive: Longest run of pruned windows.
    initial_state: Gate state of the first windows (0 = full vision).
    motion_source: "eef_state" (measured position in observation.state) or "action_fk" (predicted actions).
    delta_method: "net" displacement or "sum" of step lengths (eef_state).
    min_delta_pos: Steps shorter than this count as 0 (delta_method="sum").
    eef_slice: [start, end) of the end-effector position in observation.state.
    action_slice: [start, end) of the 6 delta-EEF components (dx, dy, dz, droll, dpitch, dyaw) in the action.
    """

    keep_ratio: float = 0.5
    split: list[float] = field(default_factory=lambda: [0.4, 0.6])
    camera_weights: dict[str, float] = field(default_factory=dict)
    preserve_positions: bool = False
    gate: bool = True
    decision: str = "adjacent"
    extrema_window: int = 3
    adjacent_last_state: bool = False
    mean_variant: str = "cumulative"
    limit_consecutive: bool = True
    max_consecutive: int = 3
    initial_state: int = 0
    motion_source: str = "eef_state"
    delta_method: str = "net"
    min_delta_pos: float = 0.0
    eef_slice: list[int] = field(default_factory=lambda: [0, 3])
    action_slice: list[int] = field(default_factory=lambda: [0, 6])
    summary = "ADP: layer-0 text-vision relevance with camera quotas, gated by end-effector motion."

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("pruning.motion_source", self.motion_source, MOTION_SOURCES)
        check_choice("pruning.delta_method", self.delta_method, DELTA_METHODS)
        weights = [*self.split, *self.camera_weights.values()]
        if any(not math.isfinite(w) or w < 0 for w in weights) or (self.split and sum(self.split) <= 0):
            raise ValueError(
                f"pruning.split={self.split} / camera_weights={self.camera_weights} must be finite numbers >= 0 "
                "(split not all 0), e.g. [0.4, 0.6]."
            )
        for name, span in (("eef_slice", self.eef_slice), ("action_slice", self.action_slice)):
            if len(span) != 2 or not 0 <= span[0] < span[1]:
                raise ValueError(f"pruning.{name}={span} must be [start, end) with 0 <= start < end.")
        if self.action_slice[1] - self.action_slice[0] != 6:
            raise ValueError(
                f"pruning.action_slice={self.action_slice} must span 6 values (xyz + rpy deltas)."
            )
        if not (math.isfinite(self.min_delta_pos) and self.min_delta_pos >= 0):
            raise ValueError(
                f"pruning.min_delta_pos={self.min_delta_pos} must be a finite number >= 0 (a length)."
            )
        try:
            self.make_gate()  # validates the gate fields
        except ValueError as error:  # the gate names its own fields; here they are pruning fields
            raise ValueError(f"pruning.{error}") from None

    @classmethod
    def small_backbone_settings(cls, vlm_depth: int) -> dict:
        return {"gate": False}  # fixed inputs never move the end effector

    def make_gate(self) -> ActionAwareGate:
        return ActionAwareGate(
            decision=self.decision, extrema_window=self.extrema_window, adjacent_last_state=self.adjacent_last_state,
            mean_variant=self.mean_variant, limit_consecutive=self.limit_consecutive,
            max_consecutive=self.max_consecutive, initial_state=self.initial_state,
        )  # fmt: skip

    def validate_for_policy(self, policy_config) -> None:
        self.camera_weight_list(list(policy_config.image_features))
        if not self.gate:
            return
        if self.motion_source == "eef_state":
            state = policy_config.robot_state_feature
            self._check_state_size(state.shape[0] if state is not None else 0, "this policy's state")
        else:
            action = policy_config.action_feature
            size = action.shape[0] if action is not None else 0
            if size < self.action_slice[1]:
                raise ValueError(
                    f"motion_source=action_fk needs delta-EEF actions in action[{self.action_slice[0]}:"
                    f"{self.action_slice[1]}], but actions have {size} values; use motion_source=eef_state "
                    "or gate=false."
                )

    def validate_for_dataset(self, features: dict[str, dict]) -> None:
        if self.gate and self.motion_source == "eef_state":
            state = features.get("observation.state")
            size = int(state["shape"][0]) if state is not None else 0
            where = (
                "the dataset's observation.state"
                if state is not None
                else "the dataset (no observation.state)"
            )
            self._check_state_size(size, where)

    def _check_state_size(self, size: int, where: str) -> None:
        if size < self.eef_slice[1]:
            raise ValueError(
                f"ADP's gate reads the end-effector position from observation.state[{self.eef_slice[0]}:"
                f"{self.eef_slice[1]}] (pruning.eef_slice={self.eef_slice}), but {where} has {size} values. "
                "Set --policy.pruning.eef_slice=[start,end], use --policy.pruning.motion_source=action_fk "
                "for delta-EEF actions, or --policy.pruning.gate=false."
            )

    def camera_weight_list(self, camera_names: list[str]) -> list[float]:
        """One weight per camera (in `image_features` order) from `camera_weights` or `split`."""
        if self.camera_weights:
            if unknown := sorted(set(self.camera_weights) - set(camera_names)):
                raise ValueError(
                    f"pruning.camera_weights names {unknown} are not cameras of this policy: {camera_names}."
                )
            if missing := [n for n in camera_names if n not in self.camera_weights]:
                raise ValueError(
                    f"pruning.camera_weights lacks cameras {missing}; give a weight for each of {camera_names}."
                )
            return [float(self.camera_weights[n]) for n in camera_names]
        count = len(camera_names)
        if not self.split or count == 1:
            return [1.0] * count
        if len(self.split) == count:
            return [float(w) for w in self.split]
        if len(self.split) == 2:
            return [float(self.split[0])] + [self.split[1] / (count - 1)] * (count - 1)
        raise ValueError(
            f"pruning.split={self.split} has {len(self.split)} weights for {count} cameras {camera_names}; "
            f"give {count} weights, or 2 (first camera : others)."
        )


@register_strategy("adp", ADPConfig)
class ADPPruner(TokenPruner):
    """Per-episode state: one `ActionAwareGate` and the open window's positions per batch row."""

    stage = "pre_llm"
    signals = frozenset({"text_visual_logits"})
    training_diagnostics = {"gate_state": 1.0}  # the gate is open for every training frame

    def __init__(self, config: ADPConfig):
        super().__init__(config)
        self.weights: list[float] | None = None
        self.n_action_steps: int | None = None
        self._quota_tables: dict[tuple, tuple[Tensor, int]] = {}
        self.reset()

    def bind(self, policy_config, checkpoint_dir=None, backbone: dict | None = None) -> None:
        self.weights = self.config.camera_weight_list(list(policy_config.image_features))
        self.n_action_steps = policy_config.n_action_steps
        self._quota_tables.clear()

    def reset(self) -> None:
        self.gates: list[ActionAwareGate] = []
        self.windows: list[list[Tensor]] = []
        self.predicted: Tensor | None = None
        self._pruned: list[bool] = []

    def _ensure_rows(self, batch: int) -> None:
        if len(self.gates) != batch:
            self.gates = [self.config.make_gate() for _ in range(batch)]
            self.windows = [[] for _ in range(batch)]
            self.predicted = None

    def observe_state(self, state: Tensor, new_chunk: bool) -> None:
        if not self.config.gate:
            return
        self._ensure_rows(state.shape[0])
        start, end = self.config.eef_slice
        positions = state[:, start:end].detach().float().cpu()
        for row, gate in enumerate(self.gates):
            window = self.windows[row]
            if new_chunk and window:
                gate.update(self._motion(row, torch.stack([*window, positions[row]])))
            if new_chunk:
                self.windows[row] = [positions[row]]
            else:
                window.append(positions[row])

    def _motion(self, row: int, positions: Tensor) -> float:
        config = self.config
        if config.motion_source == "action_fk":
            if self.predicted is None:
                return 0.0
            start, end = config.action_slice
            return fk_path_length(self.predicted[row, : self.n_action_steps or None, start:end])
        if config.delta_method == "net":
            return net_displacement(positions)
        return path_length(positions, config.min_delta_pos)

    def select(self, view: PruningView) -> TokenSelection | None:
        batch = view.visual_valid.shape[0]
        if self.config.gate:
            self._ensure_rows(batch)
            pruned = [gate.state == 1 for gate in self.gates]
        else:
            pruned = [True] * batch
        self._pruned = pruned
        if not any(pruned):
            return None
        return self.quota_top_k(view, view.signals.text_visual_logits(), pruned)

    def quota_top_k(
        self, view: PruningView, scores: Tensor, pruned: list[bool], cache: bool = True
    ) -> TokenSelection:
        """`adp_quota.quota_top_k` with this policy's quota table; `cache=False` (training) builds the table
        without storing it."""
        table, widest = self.quota_table(
            view.num_cameras, view.tokens_per_camera, view.visual_valid.device, cache
        )
        return quota_top_k(view, scores, pruned, table, widest)

    def quota_table(
        self, num_cameras: int, tokens_per_camera: int, device, cache: bool = True
    ) -> tuple[Tensor, int]:
        """`adp_quota.quota_table` for this policy's camera weights and keep ratio, cached per device."""
        key = (num_cameras, tokens_per_camera, str(device))
        if key in self._quota_tables:
            return self._quota_tables[key]
        weights = self.weights or [1.0] * num_cameras
        table = quota_table(num_cameras, tokens_per_camera, weights, self.config.keep_ratio, device)
        if cache:
            self._quota_tables[key] = table
        return table

    def select_for_training(self, view: PruningView) -> TokenSelection:
        rows = [True] * view.visual_valid.shape[0]
        return self.quota_top_k(view, view.signals.text_visual_logits(), rows, cache=False)

    def observe(self, view: PruningView, selection: TokenSelection | None) -> None:
        if self.config.gate and self.config.motion_source == "action_fk":
            self.predicted = view.extras["actions"].detach().float().cpu()

    def diagnostics(self) -> dict:
        return {
            "gate_state": [int(p) for p in self._pruned],
            "delta": [g.last_delta for g in self.gates] if self.config.gate else None,
            "pruned_streak": [g.streak for g in self.gates] if self.config.gate else None,
        }
