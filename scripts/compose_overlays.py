"""Composes `lerobot-prune visualize` outputs of several strategies into one PNG per episode (task).

Reads `<work>/<strategy>/episode_<e>/overlay_grid.png` (one camera: frames stacked vertically, 4 px gaps)
and its `frames.json`; writes `<out>/overlays_<task>.png` with one row per strategy and one column per frame.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GAP = 4  # lerobot_prune's overlay tile() gap


def frames_of(folder: Path) -> tuple[list[np.ndarray], list[dict]]:
    meta = json.loads((folder / "frames.json").read_text())
    strip = plt.imread(folder / "overlay_grid.png")
    side = (strip.shape[0] - GAP * (len(meta) - 1)) // len(meta)
    return [strip[i * (side + GAP) : i * (side + GAP) + side] for i in range(len(meta))], meta


def compose(work: Path, strategies: list[str], episode: int, title: str, out: Path) -> Path:
    rows = [(s, *frames_of(work / s / f"episode_{episode}")) for s in strategies]
    n_cols = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.6 * n_cols, 1.75 * len(rows) + 0.4), squeeze=False)
    for r, (strategy, images, meta) in enumerate(rows):
        for c, (image, frame) in enumerate(zip(images, meta, strict=True)):
            ax = axes[r][c]
            ax.imshow(image)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(frame["source"].split(",")[0].replace("episode", "ep"), fontsize=7)
            ax.set_xlabel(f"{sum(frame['kept_per_camera'].values())} kept", fontsize=6, labelpad=1)
            if c == 0:
                ax.set_ylabel(strategy, fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"overlays_episode{episode}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--strategies", required=True, help="space-separated, in row order")
    parser.add_argument("--dataset_root", type=Path, required=True, help="record-expert folder of the frames")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    record = json.loads((args.dataset_root / "lerobot_prune_record.json").read_text())
    if record["args"]["episodes_per_task"] != 1:  # then episode e is task e, in the recorded order
        raise ValueError(
            f"{args.dataset_root} must hold one episode per task (record-expert --episodes_per_task=1)"
        )
    episodes = [(task, seeds[0]) for task, seeds in record["seeds"].items()]
    for episode, (task, seed) in enumerate(episodes):
        title = (f"{task}, held-out seed {seed}: \"{record['instructions'][task]}\"\nbright tokens are "
                 "kept (25 % of 256 per call; DTP: hidden distracting tokens darkened)")  # fmt: skip
        print(compose(args.work, args.strategies.split(), episode, title, args.out))


if __name__ == "__main__":
    main()
