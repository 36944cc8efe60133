# ruff: noqa: I001, F401
"""Built-in strategies; importing this package registers them in this order."""

from . import none, random, fastv, sparsevlm, divprune, vla_pruner, ties, ties_ranks, adp, dtp
