"""`lerobot-prune convert`: a π0 / π0.5 / SmolVLA checkpoint -> a `type: pruned_*` checkpoint folder.

The base config is carried over field by field (only `type` changes and `pruning` is added), the weights
are linked or copied unchanged, and both processor pipelines are copied, so every LeRobot command can
load the result with `--policy.path`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import draccus

from .checkpoint import WEIGHTS_NAME, check_architecture, resolve_weights
from .config import PruningConfig
from .tiny import ARCH_SIDECAR

logger = logging.getLogger(__name__)
BASE_TYPES = {
    "pi0": "pruned_pi0",
    "pruned_pi0": "pruned_pi0",
    "pi05": "pruned_pi05",
    "pruned_pi05": "pruned_pi05",
    "smolvla": "pruned_smolvla",
    "pruned_smolvla": "pruned_smolvla",
}
PROCESSOR_FILES = ("policy_preprocessor*", "policy_postprocessor*")


def resolve_checkpoint(base: str | Path) -> Path:
    """A local checkpoint folder, or a Hub repo downloaded (config, weights, processors) to the cache."""
    if Path(base).is_dir():
        return Path(base)
    if Path(base).exists() or str(base).startswith((".", "/")):
        raise FileNotFoundError(f"Base checkpoint {base} is not a folder.")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(base), allow_patterns=["*.json", "*.safetensors"]))
    except Exception as err:
        raise FileNotFoundError(
            f"{base!r} is neither a local folder nor a reachable Hub repo: {err}"
        ) from err


def read_base_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; is it a LeRobot policy checkpoint?")
    data = json.loads(path.read_text())
    base_type = data.get("type")
    if base_type not in BASE_TYPES:
        raise ValueError(
            f"{folder} is a {base_type!r} checkpoint; convert supports {sorted(BASE_TYPES)} base checkpoints."
        )
    return data


def convert(base: str | Path, out: str | Path, pruning: PruningConfig, *, tokenizer: str | None = None,
            arch_override: dict[str, int] | None = None) -> Path:  # fmt: skip
    """Writes the pruned checkpoint to `out` and returns it. Nothing is written if a check fails."""
    from lerobot.configs import PreTrainedConfig

    folder = resolve_checkpoint(base)
    data = read_base_config(folder)
    weights = resolve_weights(folder)
    processors = sorted(p for pattern in PROCESSOR_FILES for p in folder.glob(pattern))
    if not any(p.name == "policy_preprocessor.json" for p in processors):
        raise FileNotFoundError(f"{folder} has no policy_preprocessor.json; re-save it with LeRobot >= 0.4.")

    data["type"] = BASE_TYPES[data["type"]]
    data["pruning"] = {"type": pruning.type, **draccus.encode(pruning)}
    if data["type"] == "pruned_smolvla":
        _check_smolvla_options(folder, tokenizer, arch_override)
    else:
        _carry_paligemma_options(data, folder, tokenizer, arch_override)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(data))
        config = PreTrainedConfig.from_pretrained(tmp)  # validates every field, strategy included
    check_architecture(weights, config)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config._save_pretrained(out)
    _link_or_copy(weights, out / WEIGHTS_NAME)
    for path in processors:
        shutil.copy2(path, out / path.name)
    if tokenizer is not None:
        _set_tokenizer(out / "policy_preprocessor.json", tokenizer)
    logger.info("Wrote %s checkpoint (%s) to %s", config.type, pruning.type, out)
    return out


def _carry_paligemma_options(data: dict, folder: Path, tokenizer: str | None,
                             arch_override: dict[str, int] | None) -> None:  # fmt: skip
    """π0/π0.5: the backbone sizes (argument or init-tiny's sidecar) and the tokenizer go into the config."""
    if arch_override is None and (folder / ARCH_SIDECAR).is_file():
        arch_override = json.loads((folder / ARCH_SIDECAR).read_text())
    data["arch_override"] = arch_override if arch_override is not None else data.get("arch_override")
    if tokenizer is not None:
        data["tokenizer_name"] = tokenizer
    elif "tokenizer_name" not in data:
        data["tokenizer_name"] = _saved_tokenizer_name(folder) or data.get("tokenizer_name")
        if data["tokenizer_name"] is None:
            del data["tokenizer_name"]


def _check_smolvla_options(folder: Path, tokenizer: str | None, arch_override: dict[str, int] | None) -> None:
    """SmolVLA reads its sizes and tokenizer from `vlm_model_name`; π0's two options do not apply."""
    if tokenizer is not None or arch_override is not None:
        raise ValueError(
            f"{folder} is a SmolVLA checkpoint: its VLM sizes and tokenizer come from `vlm_model_name` in its "
            f"config.json, so tokenizer={tokenizer!r} / arch_override={arch_override!r} are not accepted "
            "(they apply to π0/π0.5)."
        )


def _saved_tokenizer_name(folder: Path) -> str | None:
    steps = json.loads((folder / "policy_preprocessor.json").read_text()).get("steps", [])
    names = [
        s.get("config", {}).get("tokenizer_name")
        for s in steps
        if s.get("registry_name") == "tokenizer_processor"
    ]
    return names[0] if names else None


def _set_tokenizer(preprocessor_json: Path, tokenizer: str) -> None:
    pipeline = json.loads(preprocessor_json.read_text())
    for step in pipeline.get("steps", []):
        if step.get("registry_name") == "tokenizer_processor":
            step.setdefault("config", {})["tokenizer_name"] = tokenizer
    preprocessor_json.write_text(json.dumps(pipeline, indent=2))


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source.resolve(), target)
    except OSError:
        shutil.copy2(source, target)
