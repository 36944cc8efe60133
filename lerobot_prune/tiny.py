"""Tiny random π0 / π0.5 checkpoints that run offline: a word-level tokenizer and LeRobot's own save path."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .backbones.arch import TINY_ARCH, backbone_sizes

ARCH_SIDECAR = "lerobot_prune_arch.json"
TOKENIZER_DIR = "tokenizer"
# Task prompts of LeRobot's sims plus common manipulation words; anything else maps to <unk>.
_WORDS = (
    "push the t-shaped block onto target . pick up cube and place it in box transfer insertion peg socket "
    "insert move to left right top bottom red blue green white black yellow bowl plate mug drawer open close "
    "put on a of with into from robot arm gripper grasp lift stack cup pour bottle can"
).split()


def make_tiny_tokenizer(directory: str | Path) -> Path:
    """Saves a lower-casing word-level tokenizer with a leading <bos> (`AutoTokenizer.from_pretrained(directory)` loads it)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<bos>", "<eos>"]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(_WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # Like PaliGemma's tokenizer, start every prompt with <bos>, so even an empty task has one token.
    backend.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )
    directory = Path(directory)
    tokenizer.save_pretrained(directory)
    return directory


def pusht_features():
    """Input/output features of LeRobot's PushT env as a policy sees them."""
    from lerobot.configs import FeatureType
    from lerobot.envs.configs import PushtEnv
    from lerobot.envs.utils import env_to_policy_features

    features = env_to_policy_features(PushtEnv())
    inputs = {k: f for k, f in features.items() if f.type is not FeatureType.ACTION}
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    return inputs, outputs


def pusht_stats() -> dict[str, dict[str, torch.Tensor]]:
    """Normalisation stats for PushT's 2-D agent position and action (coordinates in [0, 512])."""
    stat = {"mean": torch.full((2,), 256.0), "std": torch.full((2,), 128.0), "min": torch.zeros(2),
            "max": torch.full((2,), 512.0), "q01": torch.full((2,), 5.0), "q99": torch.full((2,), 507.0)}  # fmt: skip
    return {"observation.state": dict(stat), "action": dict(stat)}


TINY_POLICY_TYPES = ("pi0", "pi05", "smolvla")


def init_tiny(out: str | Path, *, policy_type: str = "pi0", empty_cameras: int = 0, chunk_size: int = 10,
              n_action_steps: int = 10, seed: int = 0) -> Path:  # fmt: skip
    """Writes a tiny random LeRobot checkpoint of `policy_type` for PushT with the upstream `save_pretrained`.

    The folder holds config.json, model.safetensors, both processor pipelines (tokenizer = the local
    `tokenizer/` folder) and `lerobot_prune_arch.json` with the tiny sizes, which `convert` reads.
    SmolVLA instead gets a local tiny SmolVLM folder as `vlm_model_name` (see `tiny_smolvla`).
    """
    if policy_type not in TINY_POLICY_TYPES:
        raise ValueError(f"policy_type {policy_type!r} is not one of {list(TINY_POLICY_TYPES)}.")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if policy_type == "smolvla":
        from .tiny_smolvla import init_tiny_smolvla

        return init_tiny_smolvla(out, empty_cameras=empty_cameras, chunk_size=chunk_size,
                                 n_action_steps=n_action_steps, seed=seed)  # fmt: skip
    tokenizer_dir = make_tiny_tokenizer(out / TOKENIZER_DIR)
    inputs, outputs = pusht_features()
    config_cls, policy_cls, module, make_processors = _upstream(policy_type)
    config = config_cls(
        input_features=inputs, output_features=outputs, chunk_size=chunk_size, n_action_steps=n_action_steps,
        empty_cameras=empty_cameras, device="cpu", push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    with backbone_sizes(module, TINY_ARCH):
        policy = policy_cls(config)
    policy.save_pretrained(out)
    pre, post = make_processors(config, pusht_stats(), tokenizer_name=str(tokenizer_dir))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    (out / ARCH_SIDECAR).write_text(json.dumps(TINY_ARCH, indent=2))
    return out


def init_tiny_pi0(out: str | Path, **kwargs) -> Path:
    """`init_tiny` for a π0 checkpoint (type `pi0`)."""
    return init_tiny(out, policy_type="pi0", **kwargs)


def _upstream(policy_type: str):
    """(config class, policy class, modeling module, processor factory) of an upstream policy type."""
    if policy_type == "pi05":
        from lerobot.policies.pi05 import modeling_pi05
        from lerobot.policies.pi05.configuration_pi05 import PI05Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy

        from lerobot_policy_prune.pruned_pi05.processor_pruned_pi05 import make_pi05_processors

        return PI05Config, PI05Policy, modeling_pi05, make_pi05_processors
    from lerobot.policies.pi0 import modeling_pi0
    from lerobot.policies.pi0.configuration_pi0 import PI0Config
    from lerobot.policies.pi0.modeling_pi0 import PI0Policy

    from lerobot_policy_prune.pruned_pi0.processor_pruned_pi0 import make_pi0_family_processors

    return PI0Config, PI0Policy, modeling_pi0, make_pi0_family_processors
