"""Model families (PaliGemma: π0/π0.5, SmolVLM: SmolVLA), each registered once by its own package.

Generic code (convert, bench, init-tiny, the policies' weight check) asks `family_for(policy_type)` instead
of branching on a family name. A family's functions import their model code lazily, so registering one
loads no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PRUNED_PREFIX = "pruned_"


@dataclass(frozen=True)
class Family:
    """What a model family answers for the generic code.

    Args:
        name: Family name, e.g. "paligemma".
        policy_types: The upstream LeRobot policy types it runs, e.g. ("pi0", "pi05"); the pruned types
            are these with `pruned_` in front.
        check_architecture: `(weights_path, config)` -> None; raises if the weights' sizes do not fit.
        carry_convert_options: `(config_data, base_folder, tokenizer, arch_override, *, store_tokenizer)` ->
            a function convert runs on the written checkpoint folder (e.g. storing a tokenizer in its
            preprocessor), or None; puts the family's convert options into `config_data` (raises on
            options that do not apply to the family).
        init_tiny: `(out, *, policy_type, env_type, empty_cameras, chunk_size, n_action_steps, seed,
            features, stats, arch)` -> writes a tiny random base checkpoint into the existing folder `out`.
        bench_parts: `(policy_type, size, cameras, num_steps, pruned_config_class, **model_options)` -> a
            `BenchParts` for `lerobot-prune bench`.
    """

    name: str
    policy_types: tuple[str, ...]
    check_architecture: Callable[..., None]
    carry_convert_options: Callable[..., Callable[[Path], None] | None]
    init_tiny: Callable[..., Path]
    bench_parts: Callable[..., object]


_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    taken = [t for t in family.policy_types if t in policy_types()]
    if family.name in _FAMILIES or taken:
        raise ValueError(f"Family {family.name!r} (policy types {taken}) is already registered.")
    _FAMILIES[family.name] = family
    return family


def list_families() -> dict[str, Family]:
    return dict(_FAMILIES)


def policy_types() -> tuple[str, ...]:
    """Every upstream policy type a registered family runs, in registration order."""
    return tuple(t for family in _FAMILIES.values() for t in family.policy_types)


def family_for(policy_type: str) -> Family:
    """The family running `policy_type` (upstream, e.g. "pi0", or pruned, e.g. "pruned_pi0")."""
    base = policy_type.removeprefix(PRUNED_PREFIX)
    for family in _FAMILIES.values():
        if base in family.policy_types:
            return family
    raise ValueError(f"No model family runs policy type {policy_type!r}; known: {', '.join(policy_types())}.")


def check_architecture(path: Path, config) -> None:
    """Raises if the weights in `path` do not have the sizes `config` describes."""
    family_for(config.type).check_architecture(path, config)
