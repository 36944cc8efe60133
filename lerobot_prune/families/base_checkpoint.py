"""A base checkpoint folder (local or from the Hub), its config, and the pruned type it converts to."""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import read_json
from .registry import policy_types


def base_types() -> dict[str, str]:
    """Checkpoint types convert reads -> the pruned type each becomes (a base type or an already pruned one)."""
    pruned = {t: f"pruned_{t}" for t in policy_types()}
    return {name: target for base, target in pruned.items() for name in (base, target)}


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
    if base_type not in base_types():
        raise ValueError(
            f"{folder} is a {base_type!r} checkpoint; convert supports {sorted(base_types())} base checkpoints."
        )
    return data
