"""A tokenizer stored inside a checkpoint's preprocessor, so the checkpoint folder can be moved or shared.

LeRobot's `TokenizerProcessorStep` saves only `tokenizer_name` (a Hub id or a folder path) in
`policy_preprocessor.json`; a local folder is an absolute path that breaks when the checkpoint moves or the
base it came from is deleted. `EmbeddedTokenizerProcessorStep` is the same step with the tokenizer's
files as its *state*: LeRobot's pipeline writes a step's state to a `.safetensors` file next to the JSON
(`policy_preprocessor_step_<i>_lerobot_prune_tokenizer_processor.safetensors`) and, in
`DataProcessorPipeline.from_pretrained`, reads it from the folder (or Hub repo) the pipeline is loaded
from and hands it to `load_state_dict`. So the tokenizer goes wherever the checkpoint goes: `lerobot-eval
--policy.path=<moved folder>`, `make_pre_post_processors(config, pretrained_path=...)`, the Hub, and the
checkpoints `lerobot-train` saves (it re-saves the pipeline with its state).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from lerobot.processor import ProcessorStepRegistry, TokenizerProcessorStep
from safetensors.torch import save_file

from ...checkpoint import read_json

STEP_NAME = "lerobot_prune_tokenizer_processor"
UPSTREAM_STEP_NAME = "tokenizer_processor"
# `tokenizer_name` of a config whose tokenizer lives in its checkpoint's preprocessor (set by convert).
EMBEDDED_TOKENIZER = "embedded:policy_preprocessor"
MAX_TOKENIZER_BYTES = 256 * 2**20


def read_tokenizer_files(folder: str | Path) -> dict[str, torch.Tensor]:
    """The files of a tokenizer folder as uint8 tensors keyed by file name (top-level files only)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"tokenizer={str(folder)!r} is not a folder; give a local tokenizer folder.")
    files = {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}
    if not files:
        raise ValueError(f"tokenizer={str(folder)!r} holds no files; give a saved tokenizer folder.")
    size = sum(p.stat().st_size for p in files.values())
    if size > MAX_TOKENIZER_BYTES:
        raise ValueError(
            f"tokenizer={str(folder)!r} holds {size / 2**20:.0f} MiB (limit {MAX_TOKENIZER_BYTES // 2**20} MiB); "
            "is it a tokenizer folder?"
        )
    return {name: torch.from_numpy(np.frombuffer(p.read_bytes(), dtype=np.uint8).copy())
            for name, p in files.items()}  # fmt: skip


@ProcessorStepRegistry.register(name=STEP_NAME)
@dataclass
class EmbeddedTokenizerProcessorStep(TokenizerProcessorStep):
    """LeRobot's `TokenizerProcessorStep` that carries its tokenizer's files in the pipeline's state.

    Built in code with `tokenizer_name=<local folder>` it reads that folder; loaded from a saved pipeline
    (no `tokenizer_name`) it gets the files from `load_state_dict`. Tokenization is upstream's. The
    saved config names no path, so nothing in the checkpoint points outside it.
    """

    files: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.tokenizer is not None:
            raise ValueError(
                f"{STEP_NAME} stores a tokenizer folder; pass tokenizer_name=<folder>, not an object."
            )
        if self.tokenizer_name is not None:
            self.files = read_tokenizer_files(self.tokenizer_name)
            self.tokenizer_name = None
            self._load_tokenizer()

    def _load_tokenizer(self) -> None:
        from transformers import AutoTokenizer

        with tempfile.TemporaryDirectory(prefix="lerobot_prune_tokenizer_") as tmp:
            for name, data in self.files.items():
                (Path(tmp) / name).write_bytes(data.numpy().tobytes())
            try:
                self.input_tokenizer = AutoTokenizer.from_pretrained(tmp)
            except (OSError, ValueError) as err:
                raise ValueError(
                    f"The stored tokenizer (files {sorted(self.files)}) does not load: {err}"
                ) from err

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.files)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.files = {name: tensor.to(torch.uint8).cpu() for name, tensor in state.items()}
        self._load_tokenizer()

    def observation(self, observation):
        if self.input_tokenizer is None:
            raise RuntimeError(
                f"{STEP_NAME} has no tokenizer: its files come from the pipeline's state file; load the "
                "pipeline with `from_pretrained` from the checkpoint folder that holds that file."
            )
        return super().observation(observation)


def embed_tokenizer(preprocessor_json: Path, tokenizer: str | Path) -> None:
    """Replaces the tokenizer step of a saved preprocessor by an embedded copy of the `tokenizer` folder.

    Writes the step's state file next to `preprocessor_json` (LeRobot's file naming) and rewrites the
    JSON; the step's other settings (max length, padding) are kept.
    """
    pipeline = read_json(preprocessor_json)
    steps = pipeline.get("steps", [])
    index = next(
        (i for i, s in enumerate(steps) if s.get("registry_name") in (UPSTREAM_STEP_NAME, STEP_NAME)), None
    )
    if index is None:
        raise ValueError(f"{preprocessor_json} has no tokenizer step to store the tokenizer {tokenizer} in.")
    saved = {k: v for k, v in steps[index].get("config", {}).items() if k != "tokenizer_name"}
    step = EmbeddedTokenizerProcessorStep(tokenizer_name=str(tokenizer), **saved)
    sanitized = re.sub(r"[^a-zA-Z0-9_]", "_", str(pipeline.get("name", "DataProcessorPipeline")).lower())
    state_file = f"{sanitized}_step_{index}_{STEP_NAME}.safetensors"
    old_state = steps[index].get("state_file")
    if old_state and old_state != state_file:
        (preprocessor_json.parent / old_state).unlink(missing_ok=True)
    save_file(step.state_dict(), preprocessor_json.parent / state_file)
    steps[index] = {"registry_name": STEP_NAME, "config": step.get_config(), "state_file": state_file}
    preprocessor_json.write_text(json.dumps(pipeline, indent=2))


def local_tokenizer_folder(preprocessor_json: Path) -> Path | None:
    """The local folder an upstream tokenizer step of a saved preprocessor loads from, if it is one."""
    for step in read_json(preprocessor_json).get("steps", []):
        if step.get("registry_name") == UPSTREAM_STEP_NAME:
            name = step.get("config", {}).get("tokenizer_name")
            if name and Path(name).is_dir():
                return Path(name)
    return None


def embedded_step_from_checkpoint(
    checkpoint: str | Path | None, **step_kwargs
) -> EmbeddedTokenizerProcessorStep:
    """A new embedded tokenizer step with the tokenizer stored in `checkpoint`'s preprocessor.

    For configs whose `tokenizer_name` is `EMBEDDED_TOKENIZER` when processors are built from the config
    (LeRobot itself loads a checkpoint's saved pipeline instead).
    """
    from safetensors.torch import load_file

    folder = Path(checkpoint) if checkpoint is not None else None
    preprocessor = folder / "policy_preprocessor.json" if folder is not None else None
    if preprocessor is None or not preprocessor.is_file():
        raise ValueError(
            f"tokenizer_name={EMBEDDED_TOKENIZER!r} means the tokenizer is stored in the checkpoint's "
            f"policy_preprocessor.json, but pretrained_path={checkpoint!r} is not a local checkpoint folder with "
            "one; set --policy.tokenizer_name=<Hub id or tokenizer folder>."
        )
    steps = read_json(preprocessor).get("steps", [])
    state_files = [s.get("state_file") for s in steps if s.get("registry_name") == STEP_NAME]
    if not state_files or not (folder / state_files[0]).is_file():
        raise ValueError(f"{preprocessor} holds no stored tokenizer ({STEP_NAME} step with its state file).")
    step = EmbeddedTokenizerProcessorStep(**step_kwargs)
    step.load_state_dict(load_file(str(folder / state_files[0])))
    return step
