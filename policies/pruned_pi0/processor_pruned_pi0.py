"""Processors of `pruned_pi0`: exactly π0's pipeline, with the tokenizer taken from the config."""

from __future__ import annotations

import torch

from lerobot_prune.families.paligemma.processors import Pipelines, make_pi0_family_processors

from .configuration_pruned_pi0 import PrunedPI0Config


def make_pruned_pi0_pre_post_processors(
    config: PrunedPI0Config, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> Pipelines:
    return make_pi0_family_processors(config, dataset_stats, tokenizer_name=config.tokenizer_name)
