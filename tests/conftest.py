"""Tiny random π0 / π0.5 / SmolVLA models and inputs built locally (no Hub); real LeRobot classes throughout."""

from __future__ import annotations

import functools
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402
from lerobot.configs import FeatureType, PolicyFeature  # noqa: E402
from lerobot.policies.pi0 import modeling_pi0  # noqa: E402
from lerobot.policies.pi0.configuration_pi0 import PI0Config  # noqa: E402
from lerobot.policies.pi0.modeling_pi0 import PI0Policy  # noqa: E402
from lerobot.policies.pi05 import modeling_pi05  # noqa: E402
from lerobot.policies.pi05.configuration_pi05 import PI05Config  # noqa: E402
from lerobot.policies.pi05.modeling_pi05 import PI05Policy  # noqa: E402
from lerobot.policies.smolvla import modeling_smolvla  # noqa: E402
from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig  # noqa: E402
from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy  # noqa: E402

import lerobot_policy_prune  # noqa: E402, F401
from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config  # noqa: E402
from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy  # noqa: E402
from lerobot_policy_prune.pruned_pi05.configuration_pruned_pi05 import PrunedPI05Config  # noqa: E402
from lerobot_policy_prune.pruned_pi05.modeling_pruned_pi05 import PrunedPI05Policy  # noqa: E402
from lerobot_policy_prune.pruned_smolvla.configuration_pruned_smolvla import PrunedSmolVLAConfig  # noqa: E402
from lerobot_policy_prune.pruned_smolvla.modeling_pruned_smolvla import PrunedSmolVLAPolicy  # noqa: E402
from lerobot_prune import list_strategies, make_pruning_config  # noqa: E402
from lerobot_prune.families.paligemma.arch import TINY_ARCH, backbone_sizes  # noqa: E402
from lerobot_prune.families.smolvlm.tiny import TINY_TEXT, TINY_VISION, make_tiny_smolvlm  # noqa: E402

CHUNK = 4
LANG_LEN = 48
TOKENS_PER_CAMERA = 256


def features(num_cameras: int):
    inputs = {
        f"observation.images.cam{i}": PolicyFeature(FeatureType.VISUAL, (3, 224, 224))
        for i in range(num_cameras)
    }
    inputs["observation.state"] = PolicyFeature(FeatureType.STATE, (2,))
    return inputs, {"action": PolicyFeature(FeatureType.ACTION, (2,))}


# family -> (pruned config, pruned policy, base config, base policy, upstream modeling module)
FAMILIES = {
    "pi0": (PrunedPI0Config, PrunedPI0Policy, PI0Config, PI0Policy, modeling_pi0),
    "pi05": (PrunedPI05Config, PrunedPI05Policy, PI05Config, PI05Policy, modeling_pi05),
    "smolvla": (PrunedSmolVLAConfig, PrunedSmolVLAPolicy, SmolVLAConfig, SmolVLAPolicy, modeling_smolvla),
}
# SmolVLA's image size (its tiny VLM's, as `resize_imgs_with_padding`) and vocabulary; π0's otherwise.
IMAGE_SIZE = {"smolvla": TINY_VISION["image_size"]}
VOCAB_SIZE = {"smolvla": TINY_TEXT["vocab_size"]}


@functools.cache
def tiny_smolvlm_dir() -> str:
    """The tiny SmolVLM folder (config, processor, tokenizer) SmolVLA reads, written once per session."""
    return str(make_tiny_smolvlm(tempfile.mkdtemp(prefix="lerobot_prune_tiny_smolvlm_")))


def vocab_size(family: str) -> int:
    return VOCAB_SIZE.get(family, TINY_ARCH["vocab_size"])


def fixed_prefix_tokens(model, num_cameras: int) -> int:
    """Prefix tokens that are neither visual nor language (SmolVLA: the state and special image tokens)."""
    return model.full_prefix_length(num_cameras, torch.zeros(1, 0)) - num_cameras * model.tokens_per_camera


def config_kwargs(num_cameras: int, family: str = "pi0") -> dict:
    inputs, outputs = features(num_cameras)
    kwargs = dict(input_features=inputs, output_features=outputs, chunk_size=CHUNK, n_action_steps=CHUNK,
                  num_inference_steps=3, device="cpu", push_to_hub=False)  # fmt: skip
    if family == "pi05":
        kwargs["tokenizer_max_length"] = LANG_LEN
    if family == "smolvla":
        kwargs |= dict(vlm_model_name=tiny_smolvlm_dir(), num_steps=kwargs.pop("num_inference_steps"),
                       tokenizer_max_length=LANG_LEN)  # fmt: skip
    return kwargs


def make_pruned(strategy: str = "none", num_cameras: int = 3, seed: int = 0, family: str = "pi0", **pruning):
    """A tiny pruned policy of `family` ("pi0" or "pi05") with `strategy`."""
    config_cls, policy_cls = FAMILIES[family][:2]
    arch = {} if family == "smolvla" else {"arch_override": dict(TINY_ARCH)}
    config = config_cls(
        pruning=make_pruning_config(strategy, **pruning), **arch, **config_kwargs(num_cameras, family)
    )
    torch.manual_seed(seed)
    return policy_cls(config).eval()


def make_base(num_cameras: int = 3, seed: int = 0, family: str = "pi0"):
    """LeRobot's own policy of `family` at the tiny size (same seed -> same weights as `make_pruned`)."""
    _, _, config_cls, policy_cls, module = FAMILIES[family]
    torch.manual_seed(seed)
    with backbone_sizes(module, None if family == "smolvla" else TINY_ARCH):
        return policy_cls(config_cls(**config_kwargs(num_cameras, family))).eval()


def model_inputs(batch: int, num_cameras: int, missing=(), prompt_lengths=None, seed: int = 1,
                 family: str = "pi0") -> dict:  # fmt: skip
    """Arguments of `sample_actions`. `missing[b]` = cameras absent in sample b; prompts are right-padded.

    π0.5 takes `tokens`/`masks` and no state (its state is part of the prompt)."""
    g = torch.Generator().manual_seed(seed)
    size = IMAGE_SIZE.get(family, 224)
    images = [torch.rand(batch, 3, size, size, generator=g) * 2 - 1 for _ in range(num_cameras)]
    img_masks = [torch.ones(batch, dtype=torch.bool) for _ in range(num_cameras)]
    for b, cams in enumerate(missing):
        for c in cams:
            img_masks[c][b] = False
            images[c][b] = -1.0
    prompt_lengths = prompt_lengths or [12] * batch
    lang_tokens = torch.randint(4, vocab_size(family), (batch, LANG_LEN), generator=g)
    lang_masks = torch.arange(LANG_LEN)[None, :] < torch.tensor(prompt_lengths)[:, None]
    lang_tokens = lang_tokens.masked_fill(~lang_masks, 0)
    state = torch.randn(batch, 32, generator=g)
    noise = torch.randn(batch, CHUNK, 32, generator=g)
    if family == "pi05":
        return dict(images=images, img_masks=img_masks, tokens=lang_tokens, masks=lang_masks, noise=noise)
    return dict(images=images, img_masks=img_masks, lang_tokens=lang_tokens, lang_masks=lang_masks,
                state=state, noise=noise)  # fmt: skip


def select_rows(inputs: dict, rows: list[int]) -> dict:
    out = {}
    for key, value in inputs.items():
        out[key] = [v[rows] for v in value] if isinstance(value, list) else value[rows]
    return out


@pytest.fixture(scope="session")
def tiny_base_checkpoint(tmp_path_factory):
    """A tiny π0 checkpoint written by `lerobot-prune init-tiny`'s code path (one padded camera)."""
    from lerobot_prune.families.tiny import init_tiny_pi0

    return init_tiny_pi0(tmp_path_factory.mktemp("tiny") / "pi0_base", empty_cameras=1)


TINY_DEPTH = TINY_ARCH["depth"]  # VLM layers of the tiny π0/π0.5 backbone (and of tiny SmolVLM)
TIES_STATS = {
    "version": 1,
    "layer": 2,
    "keep_ratio": 0.219,
    "tau_median": 0.0,
    "tau_p5": -0.1,
    "tau_p95": 0.1,
}


def make_active(strategy: str, num_cameras: int = 3, seed: int = 0, family: str = "pi0", **overrides):
    """A tiny pruned policy whose strategy prunes from its second call on, under the strategy's own
    `test_settings` (gates and warm-ups have their own tests); strategies that need calibration get
    synthetic statistics in memory."""
    settings = list_strategies()[strategy].test_settings(TINY_DEPTH) | overrides
    policy = make_pruned(strategy, num_cameras=num_cameras, seed=seed, family=family, **settings)
    if policy.config.pruning.needs_calibration:
        pruner = policy.model.pruner
        pruner.load_calibration(pruner.synthetic_calibration())
    return policy


# --- Emulated SO-101 (lerobot_prune.testing): checkpoints per pruned type and a recorded dataset ---


@pytest.fixture(scope="session", params=["pruned_pi0", "pruned_pi05"])
def robot_checkpoint(request, tmp_path_factory):
    """A tiny pruned checkpoint (fastv, keep 0.25) for an SO-101 with one camera `front`."""
    from arms_helpers import make_robot_checkpoint

    return make_robot_checkpoint(request.param, tmp_path_factory.mktemp(f"robot_{request.param}"))


@pytest.fixture(scope="session")
def so101_recorded_dataset(tmp_path_factory):
    """(dataset root, repo_id) of 2 episodes recorded by `lerobot-rollout --strategy.type=episodic` with a
    pruned_pi0 policy on the emulated SO-101 (state/action: 6 joints; camera observation.images.front)."""
    from arms_helpers import make_robot_checkpoint, record_dataset

    workdir = tmp_path_factory.mktemp("so101_recording")
    return record_dataset(
        make_robot_checkpoint("pruned_pi0", workdir / "ckpt"), workdir
    ), "local/rollout_prune_so101"
