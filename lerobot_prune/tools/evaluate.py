"""`lerobot-prune eval`: LeRobot's `lerobot-eval`, plus pruning metrics, overlays and videos in W&B.

Every argument except `--wandb.*` and `--overlay.*` goes to LeRobot's eval unchanged. After the eval,
the output folder holds LeRobot's `eval_info.json` and videos, `pruning_report.json`, and
`overlays/episode_<e>.png|.mp4` (kept tokens over the policy's camera frames, one row/frame per call).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import draccus

from .evalrun import EvalRun, parse_eval_config, run_eval, split_args
from .overlay import OverlayRecorder, OverlayStyle, tile, write_mp4, write_png

logger = logging.getLogger(__name__)
WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class WandbArgs:
    """Args:
    project: W&B project.
    mode: "online", "offline" (no account needed; sync later with `wandb sync`) or "disabled".
        Default: $WANDB_MODE if set, else "online".
    entity: W&B team or user.
    run_name: Run name; default: the eval's job name.
    """

    project: str = "lerobot_prune"
    mode: str | None = None
    entity: str | None = None
    run_name: str | None = None

    def resolved_mode(self) -> str:
        mode = self.mode or os.environ.get("WANDB_MODE") or "online"
        if mode not in WANDB_MODES:
            raise ValueError(f"--wandb.mode={mode!r} is not valid; choose one of {WANDB_MODES}.")
        return mode


@dataclass
class OverlayArgs:
    """Args:
    episodes: Episodes to draw overlays for (the first ones evaluated).
    calls: Inference calls drawn per episode (the first ones).
    cell_px: Pixels per token cell.
    darken: Brightness kept by pruned tokens.
    fps: Frame rate of the overlay videos (one frame per call).
    """

    episodes: int = 2
    calls: int = 20
    cell_px: int = 14
    darken: float = 0.35
    fps: int = 2

    def __post_init__(self) -> None:
        if self.episodes < 0 or self.calls < 1 or self.fps < 1:
            raise ValueError(
                f"--overlay.episodes={self.episodes} must be >= 0, --overlay.calls={self.calls} and "
                f"--overlay.fps={self.fps} >= 1."
            )
        OverlayStyle(cell_px=self.cell_px, darken=self.darken)  # validates


@dataclass
class EvalToolArgs:
    wandb: WandbArgs = field(default_factory=WandbArgs)
    overlay: OverlayArgs = field(default_factory=OverlayArgs)


def main(argv: list[str]) -> EvalRun:
    own, lerobot_args = split_args(argv, ("wandb", "overlay"))
    args = draccus.parse(EvalToolArgs, args=own)
    mode = args.wandb.resolved_mode()
    cfg = parse_eval_config(lerobot_args)
    recorder = OverlayRecorder(
        style=OverlayStyle(cell_px=args.overlay.cell_px, darken=args.overlay.darken),
        max_calls=args.overlay.calls,
        max_episodes=args.overlay.episodes,
    )
    run = run_eval(lerobot_args, cfg, recorder)
    overlay_files = write_overlays(recorder, run.output_dir / "overlays", args.overlay.fps)
    summary = run.report.summary()
    print(
        f"success {run.overall.get('pc_success', float('nan')):.1f}%  sum reward "
        f"{run.overall.get('avg_sum_reward', float('nan')):.3f}  latency p50/p95 "
        f"{summary['latency_ms_median']:.1f}/{summary['latency_ms_p95']:.1f} ms  kept visual "
        f"{summary['mean_kept_visual']:.0f}  FLOP ratio {summary['flop_ratio']:.2f}  -> {run.output_dir}"
    )
    if mode != "disabled":
        run_dir = log_to_wandb(run, overlay_files, args.wandb, mode, job_name=cfg.job_name)
        print(f"wandb ({mode}) run: {run_dir}")
    return run


def write_overlays(recorder: OverlayRecorder, folder: Path, fps: int) -> dict[int, tuple[Path, Path]]:
    """Per recorded episode: a PNG (calls x cameras) and an MP4 (one frame per call, cameras side by side)."""
    files = {}
    for episode, calls in sorted(recorder.frames.items()):
        png = write_png(tile([list(cams) for cams in calls]), folder / f"episode_{episode}.png")
        mp4 = write_mp4([tile([list(cams)]) for cams in calls], folder / f"episode_{episode}.mp4", fps=fps)
        files[episode] = (png, mp4)
    return files


def metrics(run: EvalRun) -> dict[str, float]:
    """Flat scalar metrics of an eval: LeRobot's overall results and the pruning report's summary."""
    overall, summary = run.overall, run.report.summary()
    out = {f"eval/{k}": float(v) for k, v in overall.items() if isinstance(v, int | float)}
    out |= {
        "pruning/latency_ms_p50": summary["latency_ms_median"],
        "pruning/latency_ms_p95": summary["latency_ms_p95"],
        "pruning/flop_ratio": summary["flop_ratio"],
        "pruning/prefix_gflops": summary["prefix_gflops"],
        "pruning/denoise_gflops": summary["denoise_gflops"],
        "pruning/mean_kept_visual": summary["mean_kept_visual"],
        "pruning/fallback_calls": float(summary["fallback_calls"]),
    }
    for camera, kept in summary["mean_kept_visual_per_camera"].items():
        out[f"pruning/kept_visual/{camera_label(camera)}"] = kept
    for name, value in summary["diagnostics_mean"].items():
        out[f"pruning/diagnostics/{name}"] = value
    return out


def camera_label(key: str) -> str:
    """`observation.images.wrist` -> `wrist`, `observation.image` -> `image` (W&B-friendly keys)."""
    for prefix in ("observation.images.", "observation."):
        if key.startswith(prefix):
            return key[len(prefix) :].replace(".", "_")
    return key.replace(".", "_")


def log_to_wandb(run: EvalRun, overlay_files: dict, args: WandbArgs, mode: str, job_name: str) -> Path:
    """Logs one step: metrics, per-episode table, overlay images and videos; returns the local run dir."""
    import wandb

    summary = run.report.summary()
    wb = wandb.init(
        project=args.project,
        entity=args.entity,
        name=args.run_name or job_name,
        mode=mode,
        dir=str(run.output_dir),
        config={"strategy": summary["strategy"], "pruning": summary["settings"], "job_name": job_name},
        job_type="eval",
    )
    try:
        row = metrics(run)
        row["eval/episodes"] = episode_table(run)
        for episode, (png, mp4) in overlay_files.items():
            row[f"overlay/episode_{episode}"] = wandb.Image(str(png), caption=_caption(run, episode))
            row[f"overlay_video/episode_{episode}"] = wandb.Video(str(mp4), format="mp4")
        videos = run.video_paths()
        if videos:
            row["eval/video"] = wandb.Video(str(videos[0]), format="mp4")
        wb.log(row, step=0)
        return Path(wb.dir).parent
    finally:
        wb.finish()


def episode_table(run: EvalRun):
    import wandb

    per_task = run.info.get("per_task", [])
    rewards = [r for t in per_task for r in t["metrics"]["sum_rewards"]]
    successes = [s for t in per_task for s in t["metrics"]["successes"]]
    episodes = run.report.episodes()
    cameras = run.report.camera_names
    table = wandb.Table(
        columns=["episode", "sum_reward", "success", "mean_latency_ms"]
        + [f"kept_{camera_label(c)}" for c in cameras]
    )
    for i, ep in enumerate(episodes[: len(rewards)]):
        table.add_data(i, rewards[i], bool(successes[i]), ep["mean_latency_ms"],
                       *[ep["mean_kept_visual_per_camera"][c] for c in cameras])  # fmt: skip
    return table


def _caption(run: EvalRun, episode: int) -> str:
    episodes = run.report.episodes()
    kept = episodes[episode]["mean_kept_visual_per_camera"] if episode < len(episodes) else {}
    parts = ", ".join(f"{camera_label(c)} {v:.0f}" for c, v in kept.items())
    return f"episode {episode}: rows = inference calls, columns = cameras; mean kept tokens: {parts}"
