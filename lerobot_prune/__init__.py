"""lerobot_prune: visual-token pruning strategies for LeRobot's VLA policies.

The core library (configs, registry, selection, strategies, accounting) imports no policy; the
LeRobot policy types live in the `lerobot_policy_prune` package.
"""

from . import strategies  # noqa: F401  (registers the built-in strategies)
from .config import PruningConfig
from .registry import build_pruner, list_strategies, make_pruning_config
from .selection import TokenSelection

__version__ = "0.1.0"
__all__ = ["PruningConfig", "TokenSelection", "build_pruner", "list_strategies", "make_pruning_config"]
