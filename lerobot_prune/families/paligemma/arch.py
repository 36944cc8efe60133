"""Backbone sizes other than LeRobot's hard-coded Gemma-2B / Gemma-300M / SigLIP-So400m.

`PI0Pytorch.__init__` builds its sub-models from module globals (`get_gemma_config`,
`PaliGemmaForConditionalGenerationWithPiGemma`, `PiGemmaForCausalLM`). A checkpoint whose config carries
`arch_override` (tiny test models, reduced benchmark sizes) is built by swapping those three globals
for the duration of the constructor only, so the upstream constructor runs unchanged and every
process that reads the checkpoint (`lerobot-eval`, `lerobot-train`, `lerobot-rollout`) rebuilds it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

ARCH_KEYS = {
    "width": "VLM hidden size",
    "depth": "VLM and expert layer count",
    "mlp_dim": "VLM MLP size",
    "num_heads": "query heads (VLM and expert; LeRobot's training path assumes 8)",
    "num_kv_heads": "key/value heads",
    "head_dim": "head size",
    "expert_width": "action-expert hidden size",
    "expert_mlp_dim": "action-expert MLP size",
    "vision_width": "SigLIP hidden size",
    "vision_depth": "SigLIP layer count",
    "vision_heads": "SigLIP heads",
    "vision_mlp_dim": "SigLIP MLP size",
    "vocab_size": "vocabulary size of the VLM and expert embeddings",
}

TINY_ARCH = {
    "width": 64, "depth": 4, "mlp_dim": 128, "num_heads": 8, "num_kv_heads": 1, "head_dim": 16,
    "expert_width": 32, "expert_mlp_dim": 64, "vision_width": 32, "vision_depth": 1, "vision_heads": 2,
    "vision_mlp_dim": 64, "vocab_size": 1024,
}  # fmt: skip

# Written next to a tiny checkpoint: its sizes, which `lerobot-prune convert` reads as `arch_override`.
ARCH_SIDECAR = "lerobot_prune_arch.json"

_LOCK = threading.RLock()


def validate_arch(arch: dict[str, int] | None) -> None:
    if arch is None:
        return
    unknown = sorted(set(arch) - set(ARCH_KEYS))
    missing = sorted(set(ARCH_KEYS) - set(arch))
    if unknown or missing:
        raise ValueError(
            f"arch_override must have exactly the keys {sorted(ARCH_KEYS)}; "
            f"unknown: {unknown or 'none'}, missing: {missing or 'none'}."
        )
    bad = {k: v for k, v in arch.items() if not isinstance(v, int) or v <= 0}
    if bad:
        raise ValueError(f"arch_override values must be positive integers, got {bad}.")


@contextmanager
def backbone_sizes(modeling_module: ModuleType, arch: dict[str, int] | None) -> Iterator[None]:
    """Within this block, `modeling_module` (LeRobot's `modeling_pi0`/`modeling_pi05`) builds `arch`.

    The first `get_gemma_config` call (the VLM) gets the VLM sizes and the second (the expert) the expert
    sizes, in `PI0Pytorch.__init__` order. With `arch=None` nothing is touched.
    """
    if arch is None:
        yield
        return
    validate_arch(arch)
    m = modeling_module
    names = ("get_gemma_config", "PaliGemmaForConditionalGenerationWithPiGemma", "PiGemmaForCausalLM")
    with _LOCK:
        originals = {name: getattr(m, name) for name in names}
        roles = iter(("vlm", "expert"))

        def gemma_config(variant: str):
            role = next(roles)
            width, mlp = (
                (arch["width"], arch["mlp_dim"])
                if role == "vlm"
                else (arch["expert_width"], arch["expert_mlp_dim"])
            )
            return m.GemmaConfig(
                width, arch["depth"], mlp, arch["num_heads"], arch["num_kv_heads"], arch["head_dim"]
            )

        def paligemma(config):
            vision = config.vision_config
            vision.hidden_size = arch["vision_width"]
            vision.intermediate_size = arch["vision_mlp_dim"]
            vision.num_hidden_layers = arch["vision_depth"]
            vision.num_attention_heads = arch["vision_heads"]
            vision.projection_dim = config.text_config.hidden_size
            config.text_config.vocab_size = arch["vocab_size"]
            config._vocab_size = arch["vocab_size"]  # noqa: SLF001
            return originals["PaliGemmaForConditionalGenerationWithPiGemma"](config)

        def expert(config):
            config.vocab_size = arch["vocab_size"]
            return originals["PiGemmaForCausalLM"](config)

        replacements = dict(zip(names, (gemma_config, paligemma, expert), strict=True))
        try:
            for name, value in replacements.items():
                setattr(m, name, value)
            yield
        finally:
            for name, value in originals.items():
                setattr(m, name, value)


def vlm_depth(paligemma_variant: str, arch: dict[str, int] | None) -> int:
    """Number of VLM layers a config describes."""
    if arch is not None:
        return arch["depth"]
    from lerobot.policies.pi0.modeling_pi0 import get_gemma_config

    return get_gemma_config(paligemma_variant).depth


SIGLIP_SO400M_DEPTH = 27  # PaliGemma's default vision tower, which LeRobot's π0/π0.5 keep


def vision_depth(arch: dict[str, int] | None) -> int:
    """Number of SigLIP layers a config describes."""
    return arch["vision_depth"] if arch is not None else SIGLIP_SO400M_DEPTH
