"""Importing this package registers every built-in strategy, in `lerobot-prune list` order."""

from . import none  # noqa: F401  (first: `none` is the default choice)
from . import random, fastv  # noqa: F401, I001
from .base import PruningView, SignalSource, TokenPruner

__all__ = ["PruningView", "SignalSource", "TokenPruner"]
