"""Processors of `pruned_smolvla`: exactly SmolVLA's pipeline (tokenizer = `vlm_model_name`)."""

from __future__ import annotations

import torch
from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

from ..pruned_pi0.processor_pruned_pi0 import Pipelines
from .configuration_pruned_smolvla import PrunedSmolVLAConfig


def make_pruned_smolvla_pre_post_processors(
    config: PrunedSmolVLAConfig, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> Pipelines:
    return make_smolvla_pre_post_processors(config, dataset_stats)
