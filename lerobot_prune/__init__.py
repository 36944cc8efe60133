"""lerobot_prune: visual-token pruning strategies for LeRobot's VLA policies.

The core library (configs, registry, selection, strategies, accounting) imports no policy; the
LeRobot policy types live in the `lerobot_policy_prune` package.
"""

from . import strategies  # noqa: F401  (registers the built-in strategies)
from .config import KeepRatioConfig, PruningConfig
from .registry import build_pruner, list_strategies, make_pruning_config, register_strategy
from .selection import TokenSelection
from .strategies.base import PruningView, TokenPruner, TopKScorer

__version__ = "0.1.0"
__all__ = [
    "KeepRatioConfig",
    "PruningConfig",
    "PruningView",
    "TokenPruner",
    "TokenSelection",
    "TopKScorer",
    "build_pruner",
    "list_strategies",
    "make_pruning_config",
    "register_strategy",
]
