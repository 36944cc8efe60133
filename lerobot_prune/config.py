"""`PruningConfig`: the `--policy.pruning.*` choice registry.

Each strategy module declares one small dataclass registered here under its CLI name (see
`registry.register_strategy`), so every LeRobot command accepts
`--policy.pruning.type=fastv --policy.pruning.keep_ratio=0.25` and checkpoints store the block as
`"pruning": {"type": "fastv", ...}` in `config.json`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import draccus

FALLBACKS = ("raise", "full_vision")
ENCODER_MODES = ("off", "carry_over", "in_encoder")
VISION_DTYPES = (None, "float32", "bfloat16")


@dataclass
class PruningConfig(draccus.ChoiceRegistry, abc.ABC):
    """Fields shared by every strategy.

    Args:
        compact: Before the VLM, also drop the tokens of padded/missing cameras and language padding.
            Lossless: those tokens are masked out of attention anyway.
        fallback: What an exception inside a strategy does at inference time: "raise" it, or run that
            call with full vision ("full_vision") and count it in the pruning report.
        report_dir: Folder for `pruning_report.json`; default: the `--output_dir` of `lerobot-eval`.
        in_training: Apply the strategy in the training forward pass (pruning-aware fine-tuning with
            `lerobot-train`): each batch's selection is made without gradients by the strategy's
            `select_for_training` rule and the loss is computed on the kept tokens only. False trains the
            unmodified π0 loss. Has no effect at inference.
        blind: Diagnostic control, not a strategy: every camera image is replaced by mid-grey before the
            model at inference, so the policy acts on language and state alone. A policy whose success
            survives this never needed its camera.
        encoder: Visual-token selection inside the vision encoder, at inference (issue 15): "off" (the tower
            runs on every patch), "carry_over" (the previous call's kept tokens decide which patches enter
            the tower; full refresh every `encoder_refresh` calls and after `reset()`) or "in_encoder"
            (patches are dropped after tower layer `encoder_layer` by the attention they receive there).
        encoder_refresh: carry_over: every N-th call (and the first after `reset()`) runs the full tower
            and the strategy; the calls between reuse that call's kept set. >= 1.
        encoder_layer: in_encoder: tower layers that run on every patch (the score is the attention
            received in the last of them); in [1, vision depth - 1].
        encoder_keep_ratio: in_encoder: fraction of each camera's patches kept after `encoder_layer`, in
            (0, 1]; the strategy then keeps its `keep_ratio` of those.
        pack_cameras: Encode all cameras in one batched tower call instead of LeRobot's per-camera loop.
        vision_dtype: Dtype of the vision tower and projector at inference: None (as upstream: float32),
            "float32" or "bfloat16".
    """

    compact: bool = False
    fallback: str = "raise"
    report_dir: str | None = None
    in_training: bool = True
    blind: bool = False
    encoder: str = "off"
    encoder_refresh: int = 4
    encoder_layer: int = 1
    encoder_keep_ratio: float = 0.5
    pack_cameras: bool = False
    vision_dtype: str | None = None

    # One line shown by `lerobot-prune list`; set by each subclass.
    summary: ClassVar[str] = ""
    # What tools ask instead of testing strategy names (set by subclasses where they differ):
    # the field a sweep varies ("keep_ratio", "tau"; None: one cell per strategy),
    sweep_field: ClassVar[str | None] = None
    # whether the strategy can remove a real token (False: full vision or lossless compaction only),
    selects_tokens: ClassVar[bool] = True
    # whether it is the full-vision reference that success and cost are compared against,
    is_reference: ClassVar[bool] = False
    # whether it is an ablation or rank baseline of another strategy (left out of summary plots),
    is_ablation: ClassVar[bool] = False
    # whether it needs offline calibration statistics (`lerobot-prune calibrate`) before it can run; its
    # pruner then has `load_calibration(stats)` and `synthetic_calibration()` (bench and tests).
    needs_calibration: ClassVar[bool] = False

    @classmethod
    def small_backbone_settings(cls, vlm_depth: int) -> dict:
        """Field overrides under which this strategy runs on a small backbone (`vlm_depth` layers) with fixed,
        synthetic inputs, as `bench` and the tests run it: layers moved inside the backbone, motion gates off."""
        return {}

    @classmethod
    def test_settings(cls, vlm_depth: int) -> dict:
        """`small_backbone_settings` plus what makes the strategy prune from its second call on (the
        contract tests): no warm-up longer than one call, a ratio that removes tokens on a tiny backbone."""
        return cls.small_backbone_settings(vlm_depth)

    @property
    def type(self) -> str:
        return self.get_choice_name(self.__class__)

    @classmethod
    def default_choice_name(cls) -> str | None:
        return "none"

    @classmethod
    def get_choice_class(cls, name: str) -> Any:
        """The config class of strategy `name`; an unknown name (e.g. edited into a config.json) raises
        with the list of valid ones (a `KeyError`, which draccus turns into its decoding error)."""
        known = cls.get_known_choices()
        if name not in known:
            raise UnknownStrategyError(
                f"pruning.type={name!r} is not a strategy; valid types: {', '.join(known)}."
            )
        return known[name]

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ValueError(f"pruning.fallback={self.fallback!r} is not valid; choose one of {FALLBACKS}.")
        check_choice("pruning.encoder", self.encoder, ENCODER_MODES)
        check_choice("pruning.vision_dtype", self.vision_dtype, VISION_DTYPES)
        if not isinstance(self.encoder_refresh, int) or self.encoder_refresh < 1:
            raise ValueError(
                f"pruning.encoder_refresh={self.encoder_refresh!r} must be an integer >= 1 (calls per full "
                "tower pass; 1 refreshes on every call)."
            )
        check_range("pruning.encoder_keep_ratio", self.encoder_keep_ratio, 0.0, 1.0)

    def validate_for_vision(self, vision_depth: int) -> None:
        """Checks the encoder fields that depend on the vision tower's depth; raises `ValueError`."""
        if self.encoder == "in_encoder":
            check_prune_layer(self.encoder_layer, vision_depth, "pruning.encoder_layer", "vision tower")

    def is_noop(self) -> bool:
        """True when these settings can never remove a token (the unmodified policy path runs)."""
        return False

    def validate_for_model(self, vlm_depth: int) -> None:
        """Checks fields that depend on the backbone (layer indices); raises `ValueError`."""

    def validate_for_policy(self, policy_config) -> None:
        """Checks fields that depend on the policy's features (camera names, state size); raises `ValueError`."""

    def validate_for_dataset(self, features: dict[str, dict]) -> None:
        """Checks fields that depend on a training dataset's features (`LeRobotDatasetMetadata.features`:
        name -> {"dtype", "shape", "names"}); raises `ValueError` before training starts."""


class UnknownStrategyError(KeyError):
    """An unknown `pruning.type`. A `KeyError` for draccus, printed as its message (not its repr)."""

    def __str__(self) -> str:
        return str(self.args[0])


def check_empty_cameras(empty_cameras: int) -> None:
    if not isinstance(empty_cameras, int) or empty_cameras < 0:
        raise ValueError(f"empty_cameras={empty_cameras!r} must be an integer >= 0 (padded cameras to add).")


@dataclass
class KeepRatioConfig(PruningConfig):
    """Base of the strategies that keep a fraction of the valid visual tokens; validates it once.

    Args:
        keep_ratio: Fraction of valid visual tokens kept, in (0, 1] (each strategy sets its default).
    """

    keep_ratio: float = 0.5
    sweep_field = "keep_ratio"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_keep_ratio(self.keep_ratio)

    def is_noop(self) -> bool:
        return self.keep_ratio >= 1.0


def check_keep_ratio(keep_ratio: float) -> None:
    if not 0.0 < keep_ratio <= 1.0:
        raise ValueError(f"pruning.keep_ratio={keep_ratio} is outside (0, 1]; use e.g. 0.5, 0.25 or 0.125.")


def check_prune_layer(layer: int, vlm_depth: int, name: str = "pruning.layer", what: str = "VLM") -> None:
    if not 1 <= layer <= vlm_depth - 1:
        raise ValueError(
            f"{name}={layer} is outside [1, {vlm_depth - 1}] for this backbone ({vlm_depth} {what} layers): "
            "layers before it see every token, so it must leave at least one layer to prune."
        )


def check_choice(name: str, value, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {choices}.")


def check_range(name: str, value: float, low: float, high: float, low_open: bool = True) -> None:
    """Raises unless `low < value <= high` (or `low <= value <= high` with `low_open=False`)."""
    ok = (low < value if low_open else low <= value) and value <= high
    if not ok:
        interval = f"{'(' if low_open else '['}{low}, {high}]"
        raise ValueError(f"{name}={value} is outside {interval}.")


def check_layers(name: str, layers, depth: int) -> None:
    if bad := [layer for layer in layers if not 0 <= layer < depth]:
        raise ValueError(f"{name}={list(layers)} has layers {bad} outside [0, {depth - 1}] ({depth} layers).")
