"""Processors of `pruned_pi05`: exactly π0.5's pipeline, with the tokenizer taken from the config."""

from __future__ import annotations

import torch
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import (
    AbsoluteActionsProcessorStep,
    make_default_policy_processor_steps,
    make_policy_processor_pipelines,
)

from ..pruned_pi0.processor_pruned_pi0 import Pipelines, relative_actions_step, tokenizer_step
from .configuration_pruned_pi05 import PrunedPI05Config


def make_pruned_pi05_pre_post_processors(
    config: PrunedPI05Config, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> Pipelines:
    return make_pi05_processors(config, dataset_stats, tokenizer_name=config.tokenizer_name)


def make_pi05_processors(config, dataset_stats, tokenizer_name: str) -> Pipelines:
    """Same steps, order and registry names as `make_pi05_pre_post_processors` (normalise before the state
    is discretised into the prompt), with the tokenizer loaded from `tokenizer_name` (Hub id or folder)."""
    relative_step = relative_actions_step(config)
    steps = make_default_policy_processor_steps(config, dataset_stats)
    input_steps = [
        steps.rename_observations,
        steps.add_batch_dim,
        relative_step,
        steps.normalize,
        Pi05PrepareStateTokenizerProcessorStep(max_state_dim=config.max_state_dim),
        tokenizer_step(config, tokenizer_name),
        steps.to_device,
    ]
    output_steps = [
        steps.unnormalize,
        AbsoluteActionsProcessorStep(enabled=config.use_relative_actions, relative_step=relative_step),
        steps.to_cpu,
    ]
    return make_policy_processor_pipelines(input_steps=input_steps, output_steps=output_steps)
