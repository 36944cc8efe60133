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
from ..selection import TokenSelection, keep_budget, top_k

Stage = Literal["pre_llm", "in_llm", "mask_all_layers"]
Mode = Literal["drop", "mask"]
AttentionQuery = Literal["last_text", "all", "text"] | Tensor


@dataclass
class PruningView:
    """What a strategy may look at during one inference call.

    Attributes:
        visual_valid: `[B, M]` bool, selectable visual tokens (False for padded/missing cameras).
        camera_ids: `[M]` long, camera index (in `config.image_features` order) of each visual token.
        num_cameras: number of cameras in the prefix.
        signals: computes signals on demand (see `SignalSource`).
        visual_index: `[M]` long, index of each visual column among all `num_cameras * tokens_per_camera`
            visual tokens (differs from `arange(M)` when padded cameras were compacted away). Strategies
            that keep state across calls store it in that full index space.
        tokens_per_camera: visual tokens per camera (a square grid in raster order).
        vlm_depth: number of VLM layers.
        expert_attention: after the denoising loop, `[B, len(expert_layers), M]` float32 attention of the
            action queries onto each visual key, per requested expert layer (mean over heads, action
            queries and captured steps; 0 for tokens absent from a layer's cache), else None.
        extras: per-call extras; after the call "actions" holds `[B, chunk, max_action_dim]`.
    """

    visual_valid: Tensor
    camera_ids: Tensor
    num_cameras: int
    signals: SignalSource
    visual_index: Tensor
    tokens_per_camera: int
    vlm_depth: int
    expert_attention: Tensor | None = None
    extras: dict = field(default_factory=dict)

    @property
    def full_visual(self) -> int:
        return self.num_cameras * self.tokens_per_camera

    @property
    def num_visual(self) -> int:
        return self.visual_valid.shape[1]

    def budget(self, keep_ratio: float) -> Tensor:
        """`[B]` long, `max(1, round(keep_ratio * M_v))` per sample."""
        return keep_budget(self.visual_valid, keep_ratio)

    def budget_bound(self, keep_ratio: float) -> int:
        """An upper bound of `budget(keep_ratio)` known without reading the device (no host sync)."""
        return min(self.num_visual, max(1, round(keep_ratio * self.num_visual)))


class SignalSource(abc.ABC):
    """Signals an adapter computes lazily for the current call (methods_spec §1.3, DESIGN §3.2)."""

    @abc.abstractmethod
    def visual_embeds(self) -> Tensor:
        """`[B, M, D]` layer-0 input embeddings of the visual tokens (projector outputs)."""

    @abc.abstractmethod
    def text_embeds(self) -> tuple[Tensor, Tensor]:
        """(`[B, N, D]` layer-0 input embeddings of the language tokens, `[B, N]` bool valid)."""

    @abc.abstractmethod
    def attention_to_visual(self, query: AttentionQuery, layer: int | None = None) -> Tensor:
        """`[B, M]` float32 softmax attention onto each visual key at `layer` (default `K-1`).

        Mean over query heads and over the query rows: "last_text" = the last valid language token,
        "all" = every valid prefix token, "text" = every valid language token; a `[B, N]` float tensor
        weights the language rows. Layers other than `K-1` must be requested with `capture_layers`
        before they run; for layers that ran on kept tokens only, absent tokens get 0.
        """

    @abc.abstractmethod
    def text_visual_logits(self) -> Tensor:
        """`[B, M]` float32 ADP score: layer-0 query(text) . key(visual) / sqrt(d), no RoPE, no softmax,
        mean over heads and valid language tokens."""

    @abc.abstractmethod
    def capture_layers(self, layers) -> None:
        """Asks the prefill to keep what `attention_to_visual(..., layer=l)` needs for these layers."""


class TokenPruner(abc.ABC):
    """Base class of all strategies: `select` is required; the other hooks default to doing nothing.

    Class attributes:
        stage: "pre_llm" (decides on embeddings, before the VLM), "in_llm" (decides at layer K) or
            "mask_all_layers" (decides after a probe pass, hides tokens from every layer).
        signals: names of the `SignalSource` methods `select` calls (documentation and validation).
        expert_steps: steps of the denoising loop whose attention `expert_layers` captures: "all" or "first".
        cannot_train: why the strategy cannot select in a training forward (None: it can, with
            `select_for_training`); `check_training` raises with it.
        training_diagnostics: constant diagnostics of a training selection, logged as
            `train/pruning/<name>` (e.g. a gate that is always open in training).
        needs_full_grid: `select` relies on every camera's full token grid (spatial smoothing, state kept
            per grid position), so it cannot follow `pruning.encoder=in_encoder`.

    Instance attributes:
        mode: "drop" removes tokens physically; "mask" keeps the sequence and masks pruned keys (per
            instance: a strategy may take it from its config, and both give the same actions in-LLM).
    """

    config_class: ClassVar[type[PruningConfig]]
    stage: ClassVar[Stage] = "pre_llm"
    signals: ClassVar[frozenset[str]] = frozenset()
    expert_steps: ClassVar[str] = "all"
    cannot_train: ClassVar[str | None] = None
    training_diagnostics: ClassVar[dict] = {}
    needs_full_grid: ClassVar[bool] = False

    def __init__(self, config: PruningConfig):
        self.config = config
        self.mode: Mode = "drop"

    @property
    def prune_layer(self) -> int:
        """First VLM layer that sees only kept tokens (0 for pre-LLM strategies)."""
        return getattr(self.config, "layer", 0) if self.stage == "in_llm" else 0

    @property
    def preserve_positions(self) -> bool:
        """Whether kept tokens keep their original RoPE positions (always, unless pruned before the VLM)."""
        return self.stage != "pre_llm" or bool(getattr(self.config, "preserve_positions", False))

    def is_noop(self) -> bool:
        """True when this strategy can never remove a token (the unmodified policy path runs)."""
        return self.config.is_noop()

    def budget(self, view: PruningView) -> tuple[Tensor, int]:
        """(`[B]` long kept count per sample, a host-side bound of it) for the config's `keep_ratio`."""
        return view.budget(self.config.keep_ratio), view.budget_bound(self.config.keep_ratio)

    def check_training(self) -> None:
        """Raises before any work in a training forward if this strategy cannot select during training."""
        if self.cannot_train is not None:
            name = self.config.type
            raise ValueError(
                f"pruning.type={name} cannot prune during training: {self.cannot_train}; set "
                f"--policy.pruning.in_training=false ({name} then prunes at inference only)."
            )

    # Hooks, each overridden by the strategies that need it.

    def bind(self, policy_config, checkpoint_dir=None, backbone: dict | None = None) -> None:  # noqa: B027
        """Called when the policy is built (and again with the checkpoint folder when it is loaded)."""

    def reset(self) -> None:  # noqa: B027
        """Clears all per-episode state (called from `policy.reset()`)."""

    def check_ready(self) -> None:  # noqa: B027
        """Raises before any model work if the strategy lacks something it needs (e.g. calibration)."""

    def prepare(self, view: PruningView) -> None:  # noqa: B027
        """Called before the VLM's first layer at inference (never in training); may request signals
        (`view.signals.capture_layers`) or update per-episode state."""

    def language_query(self) -> str | None:
        """The `attention_to_visual` query naming language rows ("last_text", "text") this strategy's `select`
        uses, if any: the engine then checks once at call entry that no prompt is empty, so the signals
        need no host synchronisation to refuse one."""
        return None

    def expert_layers(self, view: PruningView) -> list[int]:
        """Action-expert layers whose attention onto the visual keys this call needs (see `expert_steps`)."""
        return []

    @abc.abstractmethod
    def select(self, view: PruningView) -> TokenSelection | None:
        """Chooses the visual tokens to keep for this call; `None` keeps all of them."""

    def select_for_training(self, view: PruningView) -> TokenSelection | None:
        """The selection of one training batch (pruning-aware fine-tuning, `pruning.in_training`).

        Every sample of a training batch is an independent frame: this must neither read nor write the
        per-episode state that `select`/`observe` keep, so strategies whose inference rule needs history
        override it with a history-free rule. Called without gradients, after the prefill reached
        layer K-1, with no `prepare` before it; `diagnostics()` is not updated (see `training_diagnostics`).
        """
        self.check_training()
        return self.select(view)

    def observe(self, view: PruningView, selection: TokenSelection | None) -> None:  # noqa: B027
        """Called after the action chunk is produced (temporal strategies record state here)."""

    def observe_state(self, state: Tensor, new_chunk: bool) -> None:  # noqa: B027
        """Called with `observation.state` (`[B, S]`) at every control step; `new_chunk` when a chunk is
        about to be predicted (before `select`)."""

    def diagnostics(self) -> dict:
        """Per-call diagnostics of the last call for the pruning report (JSON-serialisable)."""
        return {}


class TopKScorer(TokenPruner):
    """Base of the "score the visual tokens, keep the `keep_ratio` best" strategies: implement `score`.

    Its config needs a `keep_ratio` (`config.KeepRatioConfig`). The kept count per sample is the budget
    of its valid tokens, so fixed-ratio selections keep static shapes (see `PruningView.budget_bound`).
    """

    @abc.abstractmethod
    def score(self, view: PruningView) -> Tensor:
        """`[B, M]` float scores of the visual tokens; higher is kept first (invalid ones are never kept)."""

    def select(self, view: PruningView) -> TokenSelection:
        return top_k(self.score(view), view.visual_valid, *self.budget(view))
