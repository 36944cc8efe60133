"""A tiny local SmolVLM folder (config, processor, tokenizer) so SmolVLA builds offline.

`SmolVLMWithExpertModel` always reads `AutoConfig` and `AutoProcessor` from `vlm_model_name`, even when it
does not load the VLM's weights, and SmolVLA's tokenizer step loads the tokenizer from the same name.
`make_tiny_smolvlm` writes all three into one folder; pass it as `vlm_model_name`.

Layout: 512x512 images, 16-pixel patches (1024 patches), pixel shuffle x4 -> 64 tokens per camera, like
SmolVLM2-500M; a 64-wide, 4-layer Llama text model (4 query heads, 2 key/value heads, head size 16).
"""

from __future__ import annotations

from pathlib import Path

TINY_SMOLVLM_DIR = "tiny_smolvlm"
TINY_TEXT = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 256, "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-5,
}  # fmt: skip
TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
               "image_size": 512, "patch_size": 16}  # fmt: skip
TINY_SCALE_FACTOR = 4
# `init-tiny --arch` keys for SmolVLA -> (SmolVLM sub-config, field). The action expert's width follows the
# text width through SmolVLA's `expert_width_multiplier`.
ARCH_KEYS = {
    "width": ("text", "hidden_size"), "mlp_dim": ("text", "intermediate_size"),
    "depth": ("text", "num_hidden_layers"), "num_heads": ("text", "num_attention_heads"),
    "num_kv_heads": ("text", "num_key_value_heads"), "head_dim": ("text", "head_dim"),
    "vision_width": ("vision", "hidden_size"), "vision_mlp_dim": ("vision", "intermediate_size"),
    "vision_depth": ("vision", "num_hidden_layers"), "vision_heads": ("vision", "num_attention_heads"),
}  # fmt: skip
_IMAGE_SPECIALS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": "<end_of_utterance>",
}


def make_tiny_smolvlm(directory: str | Path, text: dict | None = None, vision: dict | None = None) -> Path:
    """Writes a SmolVLM config (the tiny sizes unless `text` / `vision` override them), processor and
    word-level tokenizer to `directory` and returns it."""
    text_sizes = {**TINY_TEXT, **(text or {})}
    vision_sizes = {**TINY_VISION, **(vision or {})}
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_smolvlm import SmolVLMImageProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    from ..tiny import TINY_WORDS

    specials = ["<pad>", "<unk>", "<bos>", "<eos>", *_IMAGE_SPECIALS.values()]
    vocab = {tok: i for i, tok in enumerate(specials + sorted(set(TINY_WORDS)))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    # Every prompt starts with <bos>, so a sim without a task string still has one language token.
    backend.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>",
        extra_special_tokens=dict(_IMAGE_SPECIALS),
    )  # fmt: skip
    image_size = vision_sizes["image_size"]
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(
            size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size}
        ),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(),
        image_seq_len=(image_size // vision_sizes["patch_size"]) ** 2 // TINY_SCALE_FACTOR**2,
    )
    text = {**text_sizes, "model_type": "llama", "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    config = SmolVLMConfig(
        text_config=text, vision_config=vision_sizes, scale_factor=TINY_SCALE_FACTOR,
        image_token_id=vocab["<image>"], pad_token_id=0,
    )  # fmt: skip
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def arch_sizes(arch: dict[str, int] | None) -> tuple[dict, dict]:
    """`(text, vision)` SmolVLM size overrides from `init-tiny --arch` keys (`ARCH_KEYS`)."""
    unknown = sorted(set(arch or {}) - set(ARCH_KEYS))
    if unknown:
        raise ValueError(f"arch keys {unknown} do not apply to SmolVLA; valid keys: {sorted(ARCH_KEYS)}.")
    bad = {k: v for k, v in (arch or {}).items() if not isinstance(v, int) or v <= 0}
    if bad:
        raise ValueError(f"arch values must be positive integers, got {bad}.")
    sizes: dict[str, dict] = {"text": {}, "vision": {}}
    for key, value in (arch or {}).items():
        part, name = ARCH_KEYS[key]
        sizes[part][name] = value
    return sizes["text"], sizes["vision"]


def init_tiny(out: Path, *, policy_type: str = "smolvla", env_type: str = "pusht", empty_cameras: int = 0,
              chunk_size: int = 10, n_action_steps: int = 10, seed: int = 0, features=None,
              stats: dict | None = None, arch: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Writes a tiny random `smolvla` checkpoint for LeRobot's `env_type` sim into `out`, with LeRobot's own
    `save_pretrained` and processors; `vlm_model_name` is the tiny SmolVLM folder inside it. The sizes
    live in that folder (`TINY_TEXT` / `TINY_VISION` updated by `arch`, keys of `ARCH_KEYS`); `features`
    and `stats` are not used (the sim's are)."""
    text, vision = arch_sizes(arch)
    out.mkdir(parents=True, exist_ok=True)
    import torch
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    from ..tiny import env_features, env_stats

    vlm_dir = make_tiny_smolvlm(out / TINY_SMOLVLM_DIR, text=text, vision=vision)
    inputs, outputs = env_features(env_type)
    config = SmolVLAConfig(
        input_features=inputs, output_features=outputs, chunk_size=chunk_size, n_action_steps=n_action_steps,
        empty_cameras=empty_cameras, vlm_model_name=str(vlm_dir), load_vlm_weights=False, device="cpu",
        push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    policy = SmolVLAPolicy(config)
    policy.save_pretrained(out)
    pre, post = make_smolvla_pre_post_processors(config, env_stats(env_type))
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out
