"""Tiny random checkpoints that run offline: the shared word-level tokenizer, sim features and stats, and
`init_tiny`, which asks the policy type's model family to build the checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from .registry import family_for, policy_types

TOKENIZER_DIR = "tokenizer"
# Task prompts of LeRobot's sims plus common manipulation words; anything else maps to <unk>.
TINY_WORDS = (
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
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(TINY_WORDS)))}
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


def init_tiny(out: str | Path, *, policy_type: str = "pi0", env_type: str = "pusht", empty_cameras: int = 0,
              chunk_size: int = 10, n_action_steps: int = 10, seed: int = 0, features=None,
              stats: dict | None = None, arch: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Writes a tiny random LeRobot checkpoint of `policy_type` with the upstream `save_pretrained`.

    `env_type` (one of `ENV_TYPES`) gives the input/output features and the normalisation stats, unless
    `features` (`(inputs, outputs)` policy features) and `stats` are given (e.g. a robot's; π0/π0.5 only).

    The folder holds config.json, model.safetensors and both processor pipelines, built by the policy
    type's model family: π0/π0.5 with a local `tokenizer/` folder and `lerobot_prune_arch.json` holding the
    tiny sizes (`TINY_ARCH` updated by `arch`), which `convert` reads; SmolVLA with a local tiny SmolVLM
    folder as `vlm_model_name` (see `families.smolvlm.tiny`).
    """
    tiny_types = policy_types()
    if policy_type not in tiny_types:
        raise ValueError(f"policy_type {policy_type!r} is not one of {list(tiny_types)}.")
    check_env_type(env_type)
    return family_for(policy_type).init_tiny(
        Path(out).resolve(), policy_type=policy_type, env_type=env_type, empty_cameras=empty_cameras, chunk_size=chunk_size,
        n_action_steps=n_action_steps, seed=seed, features=features, stats=stats, arch=arch,
    )  # fmt: skip


def init_tiny_pi0(out: str | Path, **kwargs) -> Path:
    """`init_tiny` for a π0 checkpoint (type `pi0`)."""
    return init_tiny(out, policy_type="pi0", **kwargs)
