"""LeRobot policy types of lerobot_prune (installed as the package `lerobot_policy_prune`).

LeRobot's `register_third_party_plugins()` imports this package by its distribution name. Like
`lerobot.policies`, it imports only the configuration modules; the factory finds `modeling_*` and
`processor_*` by name.
"""

from lerobot_prune.families.paligemma import embedded_tokenizer  # noqa: F401  (registers the embedded tokenizer step)

from .pruned_pi0 import PrunedPI0Config  # noqa: F401
from .pruned_pi05 import PrunedPI05Config  # noqa: F401
from .pruned_smolvla import PrunedSmolVLAConfig  # noqa: F401

__all__ = ["PrunedPI0Config", "PrunedPI05Config", "PrunedSmolVLAConfig"]
