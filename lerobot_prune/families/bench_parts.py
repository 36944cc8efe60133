"""What a model family hands `lerobot-prune bench`: LeRobot's model and ours, configured alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

BENCH_SIZES = ("tiny", "mid", "scaled", "full")


@dataclass
class BenchParts:
    """LeRobot's model class and ours with their configs, and how the bench feeds and accounts them.

    `build(cls, config)` constructs a model at the family's benchmark size; `vision_dims(model)` returns
    (vision tower config, VLM width, output tokens per camera, projector input width); both work
    on LeRobot's model and ours.
    """

    base_class: type[nn.Module]
    pruned_class: type[nn.Module]
    base_config: object
    pruned_config: object
    build: Callable[[type[nn.Module], object], nn.Module]
    image_size: int
    takes_state: bool  # sample_actions(images, img_masks, lang_tokens, lang_masks, state, noise) vs π0.5's
    vision_dims: Callable[[nn.Module], tuple]
    vlm_wrapper: Callable[[nn.Module], nn.Module]  # the module whose `embed_image` runs the vision tower


def bench_features(cameras: int, image_size: int) -> dict:
    """`cameras` square RGB cameras, a 7-D state and a 7-D action, as config fields."""
    from lerobot.configs import FeatureType, PolicyFeature

    inputs = {f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, image_size, image_size))
              for i in range(cameras)}  # fmt: skip
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (7,))
    return dict(input_features=inputs, output_features={"action": PolicyFeature(FeatureType.ACTION, (7,))})
