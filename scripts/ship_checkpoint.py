"""Copies a lerobot-train checkpoint into the repo as a self-describing, movable policy folder.

    python scripts/ship_checkpoint.py --train_dir=outputs/metaworld_pi0/train --step=last \
        --log=outputs/metaworld_pi0/train.log --out=checkpoints/pi0_metaworld_mt2

Writes `<out>/` with `lerobot-prune convert` (pruning `none`: config, weights, both processor pipelines,
the local tokenizer stored inside the preprocessor, so the folder can be moved), then `training.json`
(git revision, dataset seeds, steps, wall time, the train config) and `loss_curve.csv` / `loss_curve.png`
parsed from the lerobot-train log.

A SmolVLA reads its VLM config, processor and tokenizer from the folder `vlm_model_name` names (the tiny
SmolVLM folder `init-tiny` wrote, an absolute path under outputs/): it is copied to `<out>/vlm` and both
`config.json` and the preprocessor's tokenizer step name it by its path from the repository root, the
working directory of every command that uses the committed checkpoints.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

LOG_LINE = re.compile(r"INFO (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) .*? step:\S+ .*?loss:([0-9.]+)")
REPO = Path(__file__).resolve().parent.parent


def parse_log(log: Path, log_freq: int) -> list[tuple[int, float, datetime]]:
    """(step, loss, time) of every `lerobot-train` log line. The line prints the step rounded (`2K`), so
    the i-th line is taken as step i * log_freq (one uninterrupted run, or resumed runs' logs in order)."""
    rows = []
    for line in log.read_text(errors="replace").splitlines():
        if m := LOG_LINE.search(line):
            rows.append(((len(rows) + 1) * log_freq, float(m.group(2)), datetime.fromisoformat(m.group(1))))
    return rows


def bundle_vlm_folder(out: Path) -> None:
    """Copies the SmolVLM folder of the SmolVLA checkpoint in `out` to `out/vlm` and points the checkpoint's
    config and tokenizer step at it, relative to the repository root."""
    config_file, pre_file = out / "config.json", out / "policy_preprocessor.json"
    config = json.loads(config_file.read_text())
    source = Path(config["vlm_model_name"])
    if not source.is_dir():
        raise SystemExit(f"vlm_model_name={str(source)!r} of {out} is not a local folder; nothing to bundle.")
    target = out / "vlm"
    if target.resolve() != source.resolve():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
    name = str(target.resolve().relative_to(REPO))
    config["vlm_model_name"] = name
    config_file.write_text(json.dumps(config, indent=4))
    pre = json.loads(pre_file.read_text())
    steps = [step for step in pre["steps"] if "tokenizer_name" in step.get("config", {})]
    if len(steps) != 1:
        raise SystemExit(f"{pre_file}: expected one tokenizer step, found {len(steps)}.")
    steps[0]["config"]["tokenizer_name"] = name
    pre_file.write_text(json.dumps(pre, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train_dir", type=Path, required=True)
    parser.add_argument("--step", default="last", help="checkpoint folder name under checkpoints/")
    parser.add_argument("--log", type=Path, required=True, help="the lerobot-train console log")
    parser.add_argument("--data", type=Path, help="dataset root (default: from the train config)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    source = args.train_dir / "checkpoints" / args.step / "pretrained_model"
    if not (source / "model.safetensors").is_file():
        raise SystemExit(
            f"{source} has no model.safetensors; checkpoints: {sorted(p.name for p in source.parent.parent.iterdir())}"
        )
    train_config = json.loads((source / "train_config.json").read_text())
    from lerobot_prune.strategies.none import NoPruningConfig
    from lerobot_prune.tools.convert import convert

    card = args.out / "README.md"  # the hand-written model card survives re-shipping
    card_text = card.read_text() if card.is_file() else None
    convert(source, args.out, NoPruningConfig(), overwrite=True)
    if card_text is not None:
        card.write_text(card_text)
    if train_config["policy"]["type"] == "pruned_smolvla":
        bundle_vlm_folder(args.out)

    rows = parse_log(args.log, train_config["log_freq"])
    with open(args.out / "loss_curve.csv", "w", newline="") as f:
        csv.writer(f).writerows([("step", "loss"), *((s, loss) for s, loss, _ in rows)])
    if rows:
        from lerobot_prune.tools.plot import Point, scatter

        scatter([Point(s, loss, "", "train loss") for s, loss, _ in rows], args.out / "loss_curve.png",
                x_label="step", y_label="flow-matching loss (log steps)", title="lerobot-train loss",
                connect=True)  # fmt: skip
    data = args.data or Path(train_config["dataset"]["root"])
    record = json.loads((data / "lerobot_prune_record.json").read_text())
    revision = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    training = {
        "git_revision": revision,
        "checkpoint": f"{args.step} (step {train_config.get('steps')} of the schedule)",
        "wall_time_s": (rows[-1][2] - rows[0][2]).total_seconds() if len(rows) > 1 else None,
        "first_logged_step": rows[0][0] if rows else None,
        "last_logged_step": rows[-1][0] if rows else None,
        "final_loss": rows[-1][1] if rows else None,
        "dataset": {k: record[k] for k in ("args", "instructions", "expert_failures")},
        "train_seeds": {task: [min(s), max(s)] for task, s in record["seeds"].items()},
        "train_config": train_config,
    }
    (args.out / "training.json").write_text(json.dumps(training, indent=2))
    print(f"shipped {source} -> {args.out}")


if __name__ == "__main__":
    main()
