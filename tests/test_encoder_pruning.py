"""Selection inside the vision encoder (`pruning.encoder`, issue 15): config checks, identity, carry-over
refresh schedule, batch independence, FLOP accounting."""

import pytest
from conftest import make_pruned

from lerobot_prune import make_pruning_config


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"encoder": "before"}, "pruning.encoder='before' is not valid"),
        ({"encoder_refresh": 0}, "pruning.encoder_refresh=0 must be an integer >= 1"),
        ({"encoder_keep_ratio": 0.0}, "pruning.encoder_keep_ratio=0.0 is outside (0.0, 1.0]"),
        ({"encoder_keep_ratio": 1.5}, "pruning.encoder_keep_ratio=1.5 is outside (0.0, 1.0]"),
        ({"vision_dtype": "float16"}, "pruning.vision_dtype='float16' is not valid"),
    ],
)
def test_bad_encoder_fields_are_refused_with_their_name(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make_pruning_config("fastv", **kwargs)


@pytest.mark.parametrize("strategy", ["none", "compact"])
def test_encoder_on_a_strategy_that_keeps_everything_is_refused(strategy):
    with pytest.raises(ValueError, match="pruning.encoder='carry_over' needs a strategy that keeps a subset"):
        make_pruning_config(strategy, encoder="carry_over")


def test_encoder_layer_is_checked_against_the_tower_depth():
    # The tiny π0 tower has 1 layer: no layer is left to run on the kept patches.
    with pytest.raises(
        ValueError, match=r"pruning.encoder_layer=1 is outside \[1, 0\] .*1 vision tower layers"
    ):
        make_pruned("fastv", encoder="in_encoder", keep_ratio=0.5)
