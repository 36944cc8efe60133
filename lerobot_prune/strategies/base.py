"""The strategy interface: a small class with one required method, `select`.

A strategy never sees a model. The backbone adapter hands it a `PruningView` whose signals are
computed on demand, only for the layer the strategy prunes at, and it returns a `TokenSelection`
(or `None` to keep every token for this call).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from torch import Tensor

from ..config import PruningConfig
from ..selection import TokenSelection, keep_budget

Stage = Literal["pre_llm", "in_llm"]
Mode = Literal["drop", "mask"]
AttentionQuery = Literal["last_text", "all", "text"]


@dataclass
class PruningView:
    """What a strategy may look at during one inference call.

    Attributes:
        visual_valid: `[B, M]` bool, selectable visual tokens (False for padded/missing cameras).
        camera_ids: `[M]` long, camera index (in `config.image_features` order) of each visual token.
        num_cameras: number of cameras in the prefix.
        call_index: 0-based index of this call since the last `reset()`.
        signals: computes signals on demand (see `SignalSource`).
    """

    visual_valid: Tensor
    camera_ids: Tensor
    num_cameras: int
    call_index: int
    signals: SignalSource
    extras: dict = field(default_factory=dict)

    @property
    def num_visual(self) -> int:
        return self.visual_valid.shape[1]

    def budget(self, keep_ratio: float) -> Tensor:
        """`[B]` long, `max(1, round(keep_ratio * M_v))` per sample."""
        return keep_budget(self.visual_valid, keep_ratio)


class SignalSource(abc.ABC):
    """Signals an adapter computes lazily for the current call (methods_spec §1.3, DESIGN §3.2)."""

    @abc.abstractmethod
    def visual_embeds(self) -> Tensor:
        """`[B, M, D]` layer-0 input embeddings of the visual tokens (projector outputs)."""

    @abc.abstractmethod
    def attention_to_visual(self, query: AttentionQuery) -> Tensor:
        """`[B, M]` float32 softmax attention of layer `K-1` onto each visual key.

        Mean over query heads and over the query rows: "last_text" = the last valid language token,
        "all" = every valid prefix token, "text" = every valid language token.
        """


class TokenPruner(abc.ABC):
    """Base class of all strategies.

    Class attributes:
        stage: "pre_llm" (decides on embeddings, before the VLM) or "in_llm" (decides at layer K).
        mode: "drop" removes tokens physically; "mask" keeps the sequence and masks pruned keys.
        signals: names of the `SignalSource` methods `select` calls (documentation and validation).
    """

    config_class: ClassVar[type[PruningConfig]]
    stage: ClassVar[Stage] = "pre_llm"
    mode: ClassVar[Mode] = "drop"
    signals: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: PruningConfig):
        self.config = config

    @property
    def prune_layer(self) -> int:
        """First VLM layer that sees only kept tokens (0 for pre-LLM strategies)."""
        return getattr(self.config, "layer", 0) if self.stage == "in_llm" else 0

    @property
    def preserve_positions(self) -> bool:
        """Whether kept tokens keep their original RoPE positions (always true in-LLM)."""
        return self.stage == "in_llm" or bool(getattr(self.config, "preserve_positions", False))

    def is_noop(self) -> bool:
        """True when this strategy can never remove a token (the unmodified policy path runs)."""
        return getattr(self.config, "keep_ratio", 1.0) >= 1.0

    def reset(self) -> None:  # noqa: B027  (optional hook)
        """Clears all per-episode state (called from `policy.reset()`)."""

    @abc.abstractmethod
    def select(self, view: PruningView) -> TokenSelection | None:
        """Chooses the visual tokens to keep for this call; `None` keeps all of them."""

    def observe(self, view: PruningView, selection: TokenSelection | None) -> None:  # noqa: B027
        """Called after the action chunk is produced (temporal strategies record state here)."""

