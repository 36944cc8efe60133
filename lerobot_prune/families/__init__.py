"""Model families: the only code that knows π0 / π0.5 / SmolVLA internals. Importing this package
registers the built-in families (one line each)."""

# ruff: noqa: I001, F401
from .registry import Family, check_architecture, family_for, list_families, policy_types, register_family
from . import paligemma, smolvlm
