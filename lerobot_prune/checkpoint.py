"""Checkpoint files: reading JSON and resolving the weights file (model families check the weights' sizes)."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHTS_NAME = "model.safetensors"


def read_json(path: Path):
    """The JSON in `path`; a malformed file raises a `ValueError` that names it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}).") from err


def resolve_weights(pretrained: str | Path, **hub_kwargs) -> Path:
    """Path of `model.safetensors` in a local folder or a Hub repo; raises instead of returning None."""
    folder = Path(pretrained)
    if folder.is_dir():
        path = folder / WEIGHTS_NAME
        if not path.is_file():
            present = sorted(p.name for p in folder.iterdir())
            raise FileNotFoundError(
                f"{folder} has no {WEIGHTS_NAME} (it holds {present}). A policy checkpoint needs its weights; "
                "refusing to build a randomly initialised policy."
            )
        return path
    from transformers.utils import cached_file

    try:
        return Path(cached_file(str(pretrained), WEIGHTS_NAME, **hub_kwargs))
    except Exception as err:
        raise FileNotFoundError(
            f"Could not get {WEIGHTS_NAME} of {pretrained!r} (not a local folder; Hub lookup failed: {err}). "
            "Refusing to build a randomly initialised policy."
        ) from err
