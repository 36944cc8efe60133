"""`lerobot-prune convert`: a π0 / π0.5 / SmolVLA checkpoint -> a `type: pruned_*` checkpoint folder.

The base config is carried over field by field (only `type` changes and `pruning` is added), the weights
are copied unchanged (hard-linked on request), and both processor pipelines are copied with a local
tokenizer stored inside the preprocessor, so the folder is self-contained and every LeRobot command can
load it with `--policy.path`, wherever it is moved.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import draccus

from .checkpoint import WEIGHTS_NAME, check_architecture, read_json, resolve_weights
from .config import PruningConfig
from .embedded_tokenizer import EMBEDDED_TOKENIZER, embed_tokenizer, local_tokenizer_folder
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
    data = read_json(path)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds a JSON {type(data).__name__}, not a config object.")
    base_type = data.get("type")
    if base_type not in BASE_TYPES:
        raise ValueError(
            f"{folder} is a {base_type!r} checkpoint; convert supports {sorted(BASE_TYPES)} base checkpoints."
        )
    return data


def convert(base: str | Path, out: str | Path, pruning: PruningConfig, *, tokenizer: str | None = None,
            arch_override: dict[str, int] | None = None, overwrite: bool = False,
            link_weights: bool = False) -> Path:  # fmt: skip
    """Writes the pruned checkpoint to `out` and returns it. Nothing is written if a check fails.

    Args:
        base: π0 / π0.5 / SmolVLA (or already pruned) checkpoint folder or Hub id.
        out: The new checkpoint folder. Refused if it is the base folder, inside it or contains it, or is a
            file; an existing folder is refused unless `overwrite`, which replaces it by a clean one.
        tokenizer: π0/π0.5: a local tokenizer folder, copied into the checkpoint's preprocessor.
        arch_override: π0/π0.5 backbone sizes (default: the base's `lerobot_prune_arch.json`, if any).
        overwrite: Replace an existing `out` checkpoint folder.
        link_weights: Hard-link `model.safetensors` to the base's instead of copying it: both checkpoints
            then share one file, so rewriting the base's weights in place changes this checkpoint too.

    The checkpoint is built in a temporary sibling folder and renamed into place, so an interrupted
    convert leaves `out` as it was.
    """
    folder = resolve_checkpoint(base)
    out = check_out(folder, out, overwrite)
    data = read_base_config(folder)
    weights = resolve_weights(folder)
    processors = sorted(p for pattern in PROCESSOR_FILES for p in folder.glob(pattern))
    if not any(p.name == "policy_preprocessor.json" for p in processors):
        raise FileNotFoundError(f"{folder} has no policy_preprocessor.json; re-save it with LeRobot >= 0.4.")

    data["type"] = BASE_TYPES[data["type"]]
    data["pruning"] = {"type": pruning.type, **draccus.encode(pruning)}
    embed = None
    if data["type"] == "pruned_smolvla":
        _check_smolvla_options(folder, tokenizer, arch_override)
    else:
        embed = carry_paligemma_options(data, folder, tokenizer, arch_override)
    config = config_from_dict(data)  # validates every field, strategy included
    check_architecture(weights, config)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # a checkpoint folder as mkdir would make it, not mkdtemp's private 0700
    try:
        config._save_pretrained(tmp)
        _copy_weights(weights, tmp / WEIGHTS_NAME, link=link_weights)
        for path in processors:
            shutil.copy2(path, tmp / path.name)
        if embed is not None:
            embed_tokenizer(tmp / "policy_preprocessor.json", embed)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Wrote %s checkpoint (%s) to %s", config.type, pruning.type, out)
    return out


def config_from_dict(data: dict, cli_overrides: list[str] | None = None):
    """The `PreTrainedConfig` a config.json with `data` loads as (draccus validates every field), with
    `cli_overrides` (`["--chunk_size=5", ...]`) applied as `--policy.path` applies them."""
    from lerobot.configs import PreTrainedConfig

    import lerobot_policy_prune  # noqa: F401  (registers the pruned_* types)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(data))
        return PreTrainedConfig.from_pretrained(tmp, cli_overrides=list(cli_overrides or []))


def check_out(base_folder: Path, out: str | Path, overwrite: bool) -> Path:
    """The resolved `out` folder; raises before anything is written if writing there could lose data."""
    out, base = Path(out).expanduser().resolve(), Path(base_folder).resolve()
    if out == base or base in out.parents:
        raise ValueError(
            f"out={out} is the base checkpoint folder or inside it; choose a folder outside {base}."
        )
    if out in base.parents:
        raise ValueError(f"out={out} contains the base checkpoint {base}; choose a folder outside it.")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out={out} is an existing file; choose a folder path.")
    if out.exists() and not overwrite:
        raise ValueError(f"out={out} exists; pass --overwrite=true to replace it, or choose another folder.")
    if out.exists() and any(out.iterdir()) and not (out / "config.json").is_file():
        raise ValueError(
            f"out={out} exists and is not a checkpoint folder (no config.json); refusing to replace it even "
            "with --overwrite=true."
        )
    return out


def _copy_weights(source: Path, target: Path, *, link: bool) -> None:
    if link:
        try:
            os.link(source.resolve(), target)
            return
        except OSError as err:
            logger.warning("Could not hard-link %s (%s); copying it instead.", source, err)
    shutil.copyfile(source, target)


def _move_into_place(tmp: Path, out: Path) -> None:
    """Renames the finished folder `tmp` to `out`, replacing an existing `out` only once `tmp` is complete."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / out.name)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(old / out.name, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def carry_paligemma_options(data: dict, folder: Path, tokenizer: str | None, arch_override: dict[str, int] | None,
                            *, store_tokenizer: bool = True) -> Path | None:  # fmt: skip
    """π0/π0.5: the backbone sizes (argument or init-tiny's sidecar) and the tokenizer go into the config.

    Returns the local tokenizer folder to store in the checkpoint's preprocessor (`--tokenizer`, or the
    base's own tokenizer when that is a local folder), or None when the base's tokenizer step stays
    (always, when not `store_tokenizer`: the config then names the base's tokenizer).
    """
    if arch_override is None and (folder / ARCH_SIDECAR).is_file():
        arch_override = read_json(folder / ARCH_SIDECAR)
    data["arch_override"] = arch_override if arch_override is not None else data.get("arch_override")
    if tokenizer is not None and not Path(tokenizer).is_dir():
        raise ValueError(f"tokenizer={tokenizer!r} is not a folder; give a local tokenizer folder.")
    embed = (
        Path(tokenizer)
        if tokenizer is not None
        else local_tokenizer_folder(folder / "policy_preprocessor.json")
    )
    embed = embed if store_tokenizer else None
    if embed is not None:
        data["tokenizer_name"] = EMBEDDED_TOKENIZER
    elif "tokenizer_name" not in data and (name := _saved_tokenizer_name(folder)) is not None:
        data["tokenizer_name"] = name
    return embed


def _check_smolvla_options(folder: Path, tokenizer: str | None, arch_override: dict[str, int] | None) -> None:
    """SmolVLA reads its sizes and tokenizer from `vlm_model_name`; π0's two options do not apply."""
    if tokenizer is not None or arch_override is not None:
        raise ValueError(
            f"{folder} is a SmolVLA checkpoint: its VLM sizes and tokenizer come from `vlm_model_name` in its "
            f"config.json, so tokenizer={tokenizer!r} / arch_override={arch_override!r} are not accepted "
            "(they apply to π0/π0.5)."
        )


def _saved_tokenizer_name(folder: Path) -> str | None:
    steps = read_json(folder / "policy_preprocessor.json").get("steps", [])
    names = [
        s.get("config", {}).get("tokenizer_name")
        for s in steps
        if s.get("registry_name") == "tokenizer_processor"
    ]
    return names[0] if names else None
