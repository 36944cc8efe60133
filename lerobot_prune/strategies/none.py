"""`none` (full vision) and `compact` (lossless removal of padding tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import PruningConfig
from ..registry import register_strategy
from .base import PruningView, TokenPruner


def refuse_encoder(config: PruningConfig) -> None:
    if config.encoder != "off":
        raise ValueError(
            f"pruning.encoder={config.encoder!r} needs a strategy that keeps a subset (e.g. pruning.type=fastv); "
            f"pruning.type={config.type} keeps every token, so there is nothing to carry over or to prune in "
            "the encoder."
        )


@dataclass
class NoPruningConfig(PruningConfig):
    summary = "Full vision: the unmodified LeRobot policy (bit-identical actions)."
    selects_tokens = False
    is_reference = True

    def is_noop(self) -> bool:
        return not self.compact

    def __post_init__(self) -> None:
        super().__post_init__()
        refuse_encoder(self)


@register_strategy("none", NoPruningConfig)
class NoPruner(TokenPruner):
    def select(self, view: PruningView) -> None:
        return None


@dataclass
class CompactConfig(PruningConfig):
    """Drops padded/missing cameras and language padding before the VLM; keeps every real token."""

    compact: bool = True
    summary = "Lossless: drops tokens of padded/missing cameras and language padding before the VLM."
    selects_tokens = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.compact:
            raise ValueError("pruning.type=compact requires pruning.compact=true; use pruning.type=none.")
        refuse_encoder(self)


@register_strategy("compact", CompactConfig)
class CompactPruner(NoPruner):
    pass
