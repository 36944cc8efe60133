"""The manifest of a `lerobot-prune sweep` folder (`sweep.json`): what determines its results, so a rerun
resumes only a sweep made with the same checkpoint, eval arguments and cell settings."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import draccus

logger = logging.getLogger(__name__)
MANIFEST = "sweep.json"
OWN_ARGS_IN_MANIFEST = ("shard_episodes", "ties_calibration")


def manifest(args, cells: list, lerobot_args: list[str]) -> dict:
    """What determines the sweep's results (`args`: the `SweepArgs`, `cells`: its `Cell`s). Everything but `cells` must match to resume in the same folder;
    cells are added to it, and a cell already there must have the same settings."""
    base = Path(args.policy_path)
    own = asdict(args)
    return {
        "policy_config_sha256": hashlib.sha256((base / "config.json").read_bytes()).hexdigest(),
        **{k: own[k] for k in OWN_ARGS_IN_MANIFEST},
        "eval_args": list(lerobot_args),
        "cells": {c.name: {"type": c.pruning.type, **draccus.encode(c.pruning)} for c in cells},
    }


def check_manifest(out: Path, wanted: dict, *, overwrite: bool) -> dict:
    """The folder's manifest with `wanted`'s cells added. Refuses a folder holding a sweep with other eval
    arguments, or a cell of the same name with other settings, unless `overwrite` (then starts over)."""
    path = out / MANIFEST
    if not path.is_file():
        return wanted
    found = json.loads(path.read_text())
    found_cells, wanted_cells = found.get("cells", {}), wanted.get("cells", {})
    differ = sorted(k for k in wanted.keys() | found.keys() if k != "cells" and found.get(k) != wanted.get(k))
    differ += [
        f"cells.{c}"
        for c in wanted_cells
        if c in found_cells and not same_cell(found_cells[c], wanted_cells[c])
    ]
    if not differ:
        return found | {"cells": found_cells | wanted_cells}
    if not overwrite:
        raise ValueError(
            f"{out} holds a sweep made with other arguments (differing: {', '.join(differ)}); rerun with its "
            "arguments to resume it or add cells, choose another --out, or pass --overwrite=true to discard "
            "its results."
        )
    logger.warning("sweep: --overwrite=true, discarding the results in %s", out)
    for sub in ("ckpts", "runs", "shards", "cells"):
        shutil.rmtree(out / sub, ignore_errors=True)
    path.unlink()
    return wanted


def same_cell(found: dict, wanted: dict) -> bool:
    """Same settings; a field added to the strategy configs since `found` was run counts as the same when it
    is at its default (new options are off by default and leave results unchanged)."""
    from lerobot_prune import make_pruning_config

    added = wanted.keys() - found.keys()
    if not added or "type" not in wanted:
        return found == wanted
    defaults = draccus.encode(make_pruning_config(wanted["type"]))
    return all(wanted[k] == defaults.get(k) for k in added) and {k: wanted[k] for k in found} == found


def write_manifest(out: Path, wanted: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(json.dumps(wanted, indent=2))
