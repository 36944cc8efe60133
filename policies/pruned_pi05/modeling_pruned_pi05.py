"""`PrunedPI05Policy`: LeRobot's `PI05Policy` running a token-pruning strategy (see `pruned_policy`)."""

from lerobot.policies.pi05.modeling_pi05 import PI05Policy

from lerobot_prune.families.paligemma.model import PrunedPI05Pytorch

from ..pruned_policy import PrunedPolicyMixin
from .configuration_pruned_pi05 import PrunedPI05Config


class PrunedPI05Policy(PrunedPolicyMixin, PI05Policy):
    """π0.5 with visual-token pruning (see `PrunedPI05Config.pruning`)."""

    config_class = PrunedPI05Config
    name = "pruned_pi05"
    base_type = "pi05"
    model_class = PrunedPI05Pytorch

    # LeRobot's policy-class contract reads this annotation (tests/policies/test_discovery.py).
    def __init__(self, config: PrunedPI05Config, **kwargs):
        super().__init__(config, **kwargs)
