"""`PrunedPI0Policy`: LeRobot's `PI0Policy` running a token-pruning strategy (see `pruned_policy`)."""

from lerobot.policies.pi0.modeling_pi0 import PI0Policy

from lerobot_prune.families.paligemma.model import PrunedPI0Pytorch

from ..pruned_policy import PrunedPolicyMixin
from .configuration_pruned_pi0 import PrunedPI0Config


class PrunedPI0Policy(PrunedPolicyMixin, PI0Policy):
    """π0 with visual-token pruning (see `PrunedPI0Config.pruning`)."""

    config_class = PrunedPI0Config
    name = "pruned_pi0"
    base_type = "pi0"
    model_class = PrunedPI0Pytorch

    # LeRobot's policy-class contract reads this annotation (tests/policies/test_discovery.py).
    def __init__(self, config: PrunedPI0Config, **kwargs):
        super().__init__(config, **kwargs)
