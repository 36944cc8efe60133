"""Processors of `pruned_pi05`: exactly π0.5's pipeline, with the tokenizer taken from the config."""

from __future__ import annotations

import torch

from lerobot_prune.families.paligemma.processors import Pipelines, make_pi05_processors

from .configuration_pruned_pi05 import PrunedPI05Config


def make_pruned_pi05_pre_post_processors(
    config: PrunedPI05Config, dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None
) -> Pipelines:
    return make_pi05_processors(config, dataset_stats, tokenizer_name=config.tokenizer_name)
