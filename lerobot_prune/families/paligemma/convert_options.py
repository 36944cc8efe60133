"""`lerobot-prune convert` for π0 / π0.5: the backbone sizes and the tokenizer go into the pruned config."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from ...checkpoint import read_json
from .arch import ARCH_SIDECAR
from .embedded_tokenizer import EMBEDDED_TOKENIZER, embed_tokenizer, local_tokenizer_folder


def carry_convert_options(data: dict, folder: Path, tokenizer: str | None, arch_override: dict[str, int] | None,
                            *, store_tokenizer: bool = True) -> Callable[[Path], None] | None:  # fmt: skip
    """π0/π0.5: the backbone sizes (argument or init-tiny's sidecar) and the tokenizer go into the config.

    Returns what convert runs on the written folder: storing the local tokenizer folder in its preprocessor
    (`--tokenizer`, or the base's own tokenizer when that is a local folder); or None when the base's
    tokenizer step stays (always, when not `store_tokenizer`: the config then names the base's tokenizer).
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
    return None if embed is None else partial(_store_tokenizer, embed)


def _store_tokenizer(tokenizer: Path, written: Path) -> None:
    embed_tokenizer(written / "policy_preprocessor.json", tokenizer)


def _saved_tokenizer_name(folder: Path) -> str | None:
    steps = read_json(folder / "policy_preprocessor.json").get("steps", [])
    names = [
        s.get("config", {}).get("tokenizer_name")
        for s in steps
        if s.get("registry_name") == "tokenizer_processor"
    ]
    return names[0] if names else None
