"""`lerobot-prune convert` for SmolVLA: no family options (sizes and tokenizer come from `vlm_model_name`)."""

from __future__ import annotations

from pathlib import Path


def carry_convert_options(data: dict, folder: Path, tokenizer: str | None, arch_override: dict[str, int] | None,
                          *, store_tokenizer: bool = True) -> None:  # fmt: skip
    """SmolVLA reads its sizes and tokenizer from `vlm_model_name`; π0's two options do not apply, and
    nothing is added to the config `data`."""
    if tokenizer is not None or arch_override is not None:
        raise ValueError(
            f"{folder} is a SmolVLA checkpoint: its VLM sizes and tokenizer come from `vlm_model_name` in its "
            f"config.json, so tokenizer={tokenizer!r} / arch_override={arch_override!r} are not accepted "
            "(they apply to π0/π0.5)."
        )
