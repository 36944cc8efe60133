"""The processor pipelines of π0 and π0.5: LeRobot's steps, order and registry names, with the tokenizer
loaded from a given name (Hub id, local folder, or the copy stored in a converted checkpoint)."""

from __future__ import annotations

from typing import Any

from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor
from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep
from lerobot.processor import (
    AbsoluteActionsProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RelativeActionsProcessorStep,
    TokenizerProcessorStep,
    make_default_policy_processor_steps,
    make_policy_processor_pipelines,
)

from .embedded_tokenizer import EMBEDDED_TOKENIZER, embedded_step_from_checkpoint

Pipelines = tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]


def make_pi0_family_processors(config, dataset_stats, tokenizer_name: str) -> Pipelines:
    """Same steps, order and registry names as `make_pi0_pre_post_processors` (so the saved JSONs are
    interchangeable with π0's), with the tokenizer loaded from `tokenizer_name` (Hub id or folder)."""
    relative_step = relative_actions_step(config)
    steps = make_default_policy_processor_steps(config, dataset_stats)
    input_steps = [
        steps.rename_observations,
        steps.add_batch_dim,
        Pi0NewLineProcessor(),
        tokenizer_step(config, tokenizer_name),
        steps.to_device,
        relative_step,
        steps.normalize,
    ]
    output_steps = [
        steps.unnormalize,
        AbsoluteActionsProcessorStep(enabled=config.use_relative_actions, relative_step=relative_step),
        steps.to_cpu,
    ]
    return make_policy_processor_pipelines(input_steps=input_steps, output_steps=output_steps)


def tokenizer_step(config, tokenizer_name: str) -> TokenizerProcessorStep:
    """LeRobot's tokenizer step loading `tokenizer_name`; for a converted checkpoint whose tokenizer is stored
    in its preprocessor (`tokenizer_name` = `EMBEDDED_TOKENIZER`), that stored copy."""
    kwargs = dict(max_length=config.tokenizer_max_length, padding_side="right", padding="max_length")
    if tokenizer_name == EMBEDDED_TOKENIZER:
        return embedded_step_from_checkpoint(config.pretrained_path, **kwargs)
    return TokenizerProcessorStep(tokenizer_name=tokenizer_name, **kwargs)


def relative_actions_step(config) -> RelativeActionsProcessorStep:
    """The relative-actions step of the π0 family, configured as upstream does."""
    return RelativeActionsProcessorStep(
        enabled=config.use_relative_actions,
        exclude_joints=getattr(config, "relative_exclude_joints", []),
        action_names=getattr(config, "action_feature_names", None),
    )


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
