"""The processor pipelines of π0 and π0.5: LeRobot's own factories (steps, order, registry names, so the
saved JSONs are interchangeable with π0's), with their tokenizer step loading a given tokenizer (Hub id,
local folder, or the copy stored in a converted checkpoint) instead of `google/paligemma-3b-pt-224`."""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from types import ModuleType
from typing import Any

from lerobot.policies.pi0 import processor_pi0
from lerobot.policies.pi05 import processor_pi05
from lerobot.processor import PolicyAction, PolicyProcessorPipeline, TokenizerProcessorStep

from .embedded_tokenizer import EMBEDDED_TOKENIZER, embedded_step_from_checkpoint

Pipelines = tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]

_LOCK = threading.Lock()
_NOT_SETTINGS = {"tokenizer_name", "tokenizer"}


@dataclass
class _UnloadedTokenizerStep(TokenizerProcessorStep):
    """Upstream's tokenizer step with the settings its factory gives it, before any tokenizer is loaded (the
    factory's Hub id would otherwise be fetched, and PaliGemma's is gated)."""

    def __post_init__(self):
        pass


def make_pi0_family_processors(config, dataset_stats, tokenizer_name: str) -> Pipelines:
    """`make_pi0_pre_post_processors(config, dataset_stats)` with the tokenizer from `tokenizer_name`."""
    return _with_tokenizer(
        processor_pi0, "make_pi0_pre_post_processors", config, dataset_stats, tokenizer_name
    )


def make_pi05_processors(config, dataset_stats, tokenizer_name: str) -> Pipelines:
    """`make_pi05_pre_post_processors(config, dataset_stats)` with the tokenizer from `tokenizer_name`."""
    return _with_tokenizer(
        processor_pi05, "make_pi05_pre_post_processors", config, dataset_stats, tokenizer_name
    )


def _with_tokenizer(
    module: ModuleType, factory: str, config, dataset_stats, tokenizer_name: str
) -> Pipelines:
    """Runs LeRobot's `module.factory` with its tokenizer step left unloaded, then replaces that step (found by
    type) by one with the same settings that loads `tokenizer_name`."""
    with _LOCK:
        original = module.TokenizerProcessorStep
        module.TokenizerProcessorStep = _UnloadedTokenizerStep
        try:
            pre, post = getattr(module, factory)(config, dataset_stats)
        finally:
            module.TokenizerProcessorStep = original
    found = [i for i, step in enumerate(pre.steps) if isinstance(step, _UnloadedTokenizerStep)]
    if len(found) != 1:
        raise RuntimeError(f"LeRobot's {factory} built {len(found)} tokenizer steps; expected one.")
    steps = list(pre.steps)
    steps[found[0]] = tokenizer_step(steps[found[0]], config, tokenizer_name)
    pre.steps = steps
    return pre, post


def tokenizer_step(upstream: TokenizerProcessorStep, config, tokenizer_name: str) -> TokenizerProcessorStep:
    """LeRobot's tokenizer step with `upstream`'s settings, loading `tokenizer_name`; for a converted checkpoint
    whose tokenizer is stored in its preprocessor (`tokenizer_name` = `EMBEDDED_TOKENIZER`), that copy."""
    settings = {f.name: getattr(upstream, f.name) for f in fields(TokenizerProcessorStep)
                if f.init and f.name not in _NOT_SETTINGS}  # fmt: skip
    if tokenizer_name == EMBEDDED_TOKENIZER:
        return embedded_step_from_checkpoint(config.pretrained_path, **settings)
    return TokenizerProcessorStep(tokenizer_name=tokenizer_name, **settings)
