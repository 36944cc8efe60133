"""Importing this package registers every built-in strategy, in `lerobot-prune list` order."""

# ruff: noqa: I001, F401  (import order is registration order; `none` is the default choice)
from . import none
from . import random
from . import fastv
from .base import PruningView, SignalSource, TokenPruner

__all__ = ["PruningView", "SignalSource", "TokenPruner"]
