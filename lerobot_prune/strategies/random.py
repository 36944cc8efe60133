"""`random`: a uniformly random subset of the valid visual tokens (methods_spec §2.2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..config import KeepRatioConfig
from ..registry import register_strategy
from ..selection import TokenSelection, top_k
from .base import PruningView, TokenPruner


@dataclass
class RandomConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept (ADP Table 14 uses 0.5).
    seed: Seed of the per-episode stream of random draws (ADP uses 42).
    preserve_positions: Keep original RoPE positions instead of renumbering the shorter prefix.
    """

    keep_ratio: float = 0.5
    seed: int = 42
    preserve_positions: bool = False
    summary = "Baseline: keeps a seeded uniformly random subset of the visual tokens, before the VLM."

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        return {"keep_ratio": 0.3}


_MASK = 0xFFFFFFFF


def hash_uniform(seed: int, counter: Tensor, size: int) -> Tensor:
    """`[size]` float64 pseudo-random draws of stream `seed` at step `counter`, computed on the counter's
    device with integer ops only (no generator object, no host synchronisation; same values on every device).

    Each draw is the 32-bit PCG output hash of `seed`, `counter` and the draw index, mixed in turn; all
    arithmetic stays below 2**63, so int64 never overflows.

    Args:
        counter: `[]` long.
    Returns:
        `[size]` float64 in [0, 1), exactly representable (multiples of 2**-32).
    """
    index = torch.arange(size, dtype=torch.long, device=counter.device)
    word = _pcg_hash(_pcg_hash(index ^ _pcg_hash(counter + (seed & _MASK))) ^ (seed >> 32 & _MASK))
    return word.double() * 2.0**-32


def _pcg_hash(x: Tensor) -> Tensor:
    """The PCG-RXS-M-XS 32-bit hash (Jarzynski and Olano 2020) of int64 values, read modulo 2**32."""
    state = ((x & _MASK) * 747796405 + 2891336453) & _MASK
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _MASK
    return (word >> 22) ^ word


@register_strategy("random", RandomConfig)
class RandomPruner(TokenPruner):
    """Scores are one random draw per call, shared by every row of the batch, so a sample gets the same
    tokens whether it runs alone or in a batch; each row's subset is uniform over its valid tokens.

    The draw of the i-th call of an episode is a counter-based hash of (`seed`, i): the call counter is a
    device tensor advanced in place, so the selection needs no host synchronisation and compiles once.
    """

    stage = "pre_llm"

    def __init__(self, config: RandomConfig):
        super().__init__(config)
        self._calls: Tensor | None = None  # [] long, calls of this episode so far

    def reset(self) -> None:
        if self._calls is not None:
            self._writable_calls().zero_()

    def _writable_calls(self) -> Tensor:
        """The counter, copied to a normal tensor when it was made under `torch.inference_mode()` (LeRobot's
        rollout runs `select_action` there) and is now updated outside it (`reset()`), which torch forbids."""
        if self._calls.is_inference() and not torch.is_inference_mode_enabled():
            self._calls = self._calls.clone()
        return self._calls

    def select_for_training(self, view: PruningView) -> TokenSelection:
        """A fresh subset per training sample and step from torch's global generator (seeded by
        `lerobot-train --seed`): the per-call stream of `select` would repeat one subset every step."""
        scores = torch.rand(view.visual_valid.shape, device=view.visual_valid.device)
        return top_k(scores, view.visual_valid, view.budget(self.config.keep_ratio))

    def select(self, view: PruningView) -> TokenSelection:
        device = view.visual_valid.device
        if self._calls is None or self._calls.device != device:
            self._calls = torch.zeros((), dtype=torch.long, device=device)
        scores = hash_uniform(self.config.seed, self._calls, view.num_visual)
        self._writable_calls().add_(1)
        scores = scores[None, :].expand_as(view.visual_valid)
        return top_k(scores, view.visual_valid, *self.budget(view))
