"""Settings that are valid but make a strategy do (almost) nothing useful; the policy warns about each once."""

from __future__ import annotations

from ..config import PruningConfig

MIN_DTP_REGION = 4  # tokens per camera below which DTP's prompt region is a handful of tokens


def degenerate_settings(config: PruningConfig, tokens_per_camera: int) -> list[str]:
    """Warnings for `config` on a backbone with `tokens_per_camera` visual tokens per camera."""
    warnings = []
    keep_ratio = getattr(config, "keep_ratio", None)
    if keep_ratio is not None and round(keep_ratio * tokens_per_camera) <= 1:
        warnings.append(
            f"pruning.keep_ratio={keep_ratio} keeps {max(1, round(keep_ratio * tokens_per_camera))} of "
            f"{tokens_per_camera} visual tokens per camera: the policy is close to blind."
        )
    region_ratio = getattr(config, "region_ratio", None)
    if region_ratio is not None and round(region_ratio * tokens_per_camera) < MIN_DTP_REGION:
        warnings.append(
            f"pruning.region_ratio={region_ratio} makes DTP's prompt region {round(region_ratio * tokens_per_camera)} "
            f"of {tokens_per_camera} tokens per camera; nearly every token can count as distracting."
        )
    return warnings


def warm_up_outlasted_episode(config: PruningConfig, episode_calls: int, warms_up: bool) -> str | None:
    """A warning when an episode of `episode_calls` calls ended inside the strategy's warm-up window (the
    first `window` calls run unpruned when `warms_up`)."""
    window = getattr(config, "window", None)
    if not warms_up or window is None or episode_calls == 0 or episode_calls > window:
        return None
    return (
        f"pruning.window={window} is longer than this episode ({episode_calls} policy calls): {config.type} "
        f"prunes only after {window} calls, so it never pruned; use a smaller window for short episodes."
    )
