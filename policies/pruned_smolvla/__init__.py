from .configuration_pruned_smolvla import PrunedSmolVLAConfig

__all__ = ["PrunedSmolVLAConfig"]
