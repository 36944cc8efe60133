"""`lerobot-prune convert`: a π0 / π0.5 / SmolVLA checkpoint -> a `type: pruned_*` checkpoint folder.

The base config is carried over field by field (only `type` changes and `pruning` is added), the weights
are copied unchanged (hard-linked on request), and both processor pipelines are copied with a local
tokenizer stored inside the preprocessor, so the folder is self-contained and every LeRobot command can
load it with `--policy.path`, wherever it is moved.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import draccus

from ..checkpoint import WEIGHTS_NAME, resolve_weights
from ..config import PruningConfig
from ..families import check_architecture, family_for
from ..families.base_checkpoint import base_types, read_base_config, resolve_checkpoint

logger = logging.getLogger(__name__)
PROCESSOR_FILES = ("policy_preprocessor*", "policy_postprocessor*")


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
    from lerobot_policy_prune.saved_config import config_from_dict

    folder = resolve_checkpoint(base)
    out = check_out(folder, out, overwrite)
    data = read_base_config(folder)
    weights = resolve_weights(folder)
    processors = sorted(p for pattern in PROCESSOR_FILES for p in folder.glob(pattern))
    if not any(p.name == "policy_preprocessor.json" for p in processors):
        raise FileNotFoundError(f"{folder} has no policy_preprocessor.json; re-save it with LeRobot >= 0.4.")

    data["type"] = base_types()[data["type"]]
    data["pruning"] = {"type": pruning.type, **draccus.encode(pruning)}
    finish = family_for(data["type"]).carry_convert_options(data, folder, tokenizer, arch_override)
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
        if finish is not None:
            finish(tmp)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("Wrote %s checkpoint (%s) to %s", config.type, pruning.type, out)
    return out


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
