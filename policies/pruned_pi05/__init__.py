from .configuration_pruned_pi05 import PrunedPI05Config

__all__ = ["PrunedPI05Config"]
