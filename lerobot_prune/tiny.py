"""Tiny random π0 / π0.5 checkpoints that run offline: a word-level tokenizer and LeRobot's own save path."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .backbones.arch import TINY_ARCH, backbone_sizes, validate_arch

ARCH_SIDECAR = "lerobot_prune_arch.json"
TOKENIZER_DIR = "tokenizer"
# Task prompts of LeRobot's sims plus common manipulation words; anything else maps to <unk>.
_WORDS = (
    "push the t-shaped block onto target . pick up cube and place it in box transfer insertion peg socket "
    "insert move to left right top bottom red blue green white black yellow bowl plate mug drawer open close "
    "put on a of with into from robot arm gripper grasp lift stack cup pour bottle can"
    # MetaWorld instructions of the trained checkpoints (lerobot/envs/metaworld_config.json)
    " press button coffee machine handle down slide cabinet lock door rotating clockwise reach goal"
).split()

# LeRobot sims a tiny checkpoint can be made for, with the (mean, std) of their state and action values:
# ALOHA's 14 joint angles (rad) and gripper openings of both arms; MetaWorld's end-effector xyz (m) plus
# gripper opening as state, delta-xyz plus grip effort in [-1, 1] as action.
ENV_TYPES = ("pusht", "aloha", "metaworld")
_STATE_ACTION_SCALES = {"aloha": ((0.0, 0.5), (0.0, 0.5)), "metaworld": ((0.3, 0.3), (0.0, 0.5))}


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
    return env_features("pusht")


def check_env_type(env_type: str) -> None:
    """Raises a ValueError naming `env_type` and the valid ones unless it is in `ENV_TYPES`."""
    if env_type not in ENV_TYPES:
        raise ValueError(f"env_type={env_type!r} is not supported; valid: {', '.join(ENV_TYPES)}")


def env_features(env_type: str = "pusht"):
    """Input and output features of LeRobot's `env_type` sim (default config) as a policy sees them."""
    from lerobot.configs import FeatureType
    from lerobot.envs.configs import EnvConfig
    from lerobot.envs.utils import env_to_policy_features

    check_env_type(env_type)
    features = env_to_policy_features(EnvConfig.get_choice_class(env_type)())
    inputs = {k: f for k, f in features.items() if f.type is not FeatureType.ACTION}
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    return inputs, outputs


def _gaussian_stats(shape: tuple[int, ...], mean: float, std: float) -> dict[str, torch.Tensor]:
    """mean/std/min/max/q01/q99 of N(mean, std²) per dimension (min/max at ±3σ), each of `shape`."""
    z_scores = {"mean": 0.0, "min": -3.0, "max": 3.0, "q01": -2.326, "q99": 2.326}
    stats = {k: torch.full(shape, mean + std * z) for k, z in z_scores.items()}
    stats["std"] = torch.full(shape, std)
    return stats


def env_stats(env_type: str = "pusht") -> dict[str, dict[str, torch.Tensor]]:
    """Plausible normalisation stats for the state and action of `env_type`, shaped like its features."""
    check_env_type(env_type)
    if env_type == "pusht":
        return pusht_stats()
    inputs, outputs = env_features(env_type)
    (state_mean, state_std), (action_mean, action_std) = _STATE_ACTION_SCALES[env_type]
    return {
        "observation.state": _gaussian_stats(inputs["observation.state"].shape, state_mean, state_std),
        "action": _gaussian_stats(outputs["action"].shape, action_mean, action_std),
    }


def pusht_stats() -> dict[str, dict[str, torch.Tensor]]:
    """Normalisation stats for PushT's 2-D agent position and action (coordinates in [0, 512])."""
    stat = {"mean": torch.full((2,), 256.0), "std": torch.full((2,), 128.0), "min": torch.zeros(2),
            "max": torch.full((2,), 512.0), "q01": torch.full((2,), 5.0), "q99": torch.full((2,), 507.0)}  # fmt: skip
    return {"observation.state": dict(stat), "action": dict(stat)}


TINY_POLICY_TYPES = ("pi0", "pi05", "smolvla")


def init_tiny(out: str | Path, *, policy_type: str = "pi0", env_type: str = "pusht", empty_cameras: int = 0,
              chunk_size: int = 10, n_action_steps: int = 10, seed: int = 0, features=None,
              stats: dict | None = None, arch: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Writes a tiny random LeRobot checkpoint of `policy_type` with the upstream `save_pretrained`.

    `env_type` (one of `ENV_TYPES`) gives the input/output features and the normalisation stats, unless
    `features` (`(inputs, outputs)` policy features) and `stats` are given (e.g. a robot's).

    The folder holds config.json, model.safetensors, both processor pipelines (tokenizer = the local
    `tokenizer/` folder) and `lerobot_prune_arch.json` with the tiny sizes (`TINY_ARCH` updated by `arch`),
    which `convert` reads.
    SmolVLA instead gets a local tiny SmolVLM folder as `vlm_model_name` (see `tiny_smolvla`).
    """
    if policy_type not in TINY_POLICY_TYPES:
        raise ValueError(f"policy_type {policy_type!r} is not one of {list(TINY_POLICY_TYPES)}.")
    check_env_type(env_type)
    sizes = {**TINY_ARCH, **(arch or {})}
    validate_arch(sizes)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if policy_type == "smolvla":
        if arch:
            raise ValueError(
                f"arch={arch} applies to pi0/pi05; SmolVLA's tiny sizes live in its SmolVLM folder."
            )
        from .tiny_smolvla import init_tiny_smolvla

        return init_tiny_smolvla(out, env_type=env_type, empty_cameras=empty_cameras, chunk_size=chunk_size,
                                 n_action_steps=n_action_steps, seed=seed)  # fmt: skip
    tokenizer_dir = make_tiny_tokenizer(out / TOKENIZER_DIR)
    inputs, outputs = features or env_features(env_type)
    config_cls, policy_cls, module, make_processors = _upstream(policy_type)
    config = config_cls(
        input_features=inputs, output_features=outputs, chunk_size=chunk_size, n_action_steps=n_action_steps,
        empty_cameras=empty_cameras, device="cpu", push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    with backbone_sizes(module, sizes):
        policy = policy_cls(config)
    policy.save_pretrained(out)
    pre, post = make_processors(config, stats or env_stats(env_type), tokenizer_name=str(tokenizer_dir))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    (out / ARCH_SIDECAR).write_text(json.dumps(sizes, indent=2))
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
