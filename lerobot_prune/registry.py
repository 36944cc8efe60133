"""Pairs each `PruningConfig` subclass with its `TokenPruner` class (PEFT's config <-> tuner pairing)."""

from __future__ import annotations

import re

from .config import PruningConfig

# Pruner classes are `strategies.base.TokenPruner` subclasses; the core does not import the strategies.
_PRUNERS: dict[type[PruningConfig], type] = {}


def register_strategy(name: str, config_cls: type[PruningConfig]):
    """Class decorator: registers `config_cls` under `name` for the CLI and pairs it with the pruner."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ValueError(f"Strategy name {name!r} must be lower-case snake_case.")
    if name in PruningConfig.get_known_choices():
        raise ValueError(f"Strategy {name!r} is already registered.")

    def wrap(pruner_cls: type) -> type:
        if "select" not in vars(pruner_cls) and not getattr(pruner_cls, "select", None):
            raise TypeError(f"{pruner_cls.__name__} must implement select().")
        PruningConfig.register_subclass(name)(config_cls)
        _PRUNERS[config_cls] = pruner_cls
        pruner_cls.config_class = config_cls
        return pruner_cls

    return wrap


def list_strategies() -> dict[str, type[PruningConfig]]:
    """Registered strategy names -> config classes, in registration order."""
    return dict(PruningConfig.get_known_choices())


def is_reference(name: str) -> bool:
    """Whether strategy `name` (e.g. read back from a results file) is the full-vision reference."""
    config_cls = list_strategies().get(name)
    return config_cls is not None and config_cls.is_reference


def make_pruning_config(name: str, **fields) -> PruningConfig:
    """Builds a strategy config by name; unknown names raise with the list of known ones."""
    known = list_strategies()
    if name not in known:
        raise ValueError(f"Unknown pruning strategy {name!r}; known strategies: {', '.join(known)}.")
    return known[name](**fields)


def build_pruner(config: PruningConfig):
    """The registered `TokenPruner` for `config`'s strategy, built from it."""
    try:
        pruner_cls = _PRUNERS[type(config)]
    except KeyError:
        raise ValueError(
            f"No pruner is registered for {type(config).__name__}; known: {', '.join(list_strategies())}."
        ) from None
    return pruner_cls(config)
