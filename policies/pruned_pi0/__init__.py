from .configuration_pruned_pi0 import PrunedPI0Config

__all__ = ["PrunedPI0Config"]
