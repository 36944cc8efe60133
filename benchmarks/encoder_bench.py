"""Wall-clock of encoder-side selection (`pruning.encoder`, `pack_cameras`, `vision_dtype`) next to the same
strategy with the tower run in full, in one process on the same weights.

Method: one π0 of `--size` ("mid": a CPU-sized VLM with a 6-layer SigLIP tower of width 384, so the tower
is a visible share of the call; "full": PaliGemma sizes, GPU only) with random weights; every variant loads
those weights. Each variant runs `--warmup` calls, then `--iters` timed calls of `sample_actions` on the
same batch (CUDA synchronised per call); carry_over's timed calls follow its refresh schedule, so its
median mixes refresh and carried calls as an episode does. Reported: median and p95 ms per call, the ratio
of medians to the baseline, and the pruning report's FLOP ratios (encoder, total) of the last call window.

    python benchmarks/encoder_bench.py [--device cpu|cuda] [--iters 10] [--out outputs/bench/encoder.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

import lerobot_policy_prune  # noqa: F401  (registers the policy types)
from lerobot_policy_prune.pruned_pi0.configuration_pruned_pi0 import PrunedPI0Config
from lerobot_policy_prune.pruned_pi0.modeling_pruned_pi0 import PrunedPI0Policy
from lerobot_prune import make_pruning_config
from lerobot_prune.families.bench_parts import bench_features
from lerobot_prune.families.paligemma.bench import MID_ARCH
from lerobot_prune.metrics import PruningReport

SIZES = {
    "mid": {**MID_ARCH, "vision_width": 384, "vision_depth": 6, "vision_heads": 6, "vision_mlp_dim": 1536},
    "full": None,
}
BASE = {"keep_ratio": 0.25}
VARIANTS = {
    "fastv 0.25 (tower in full)": {},
    "fastv 0.25 + pack_cameras": {"pack_cameras": True},
    "fastv 0.25 + carry_over (refresh 4)": {"encoder": "carry_over", "encoder_refresh": 4},
    "fastv 0.5 + in_encoder (layer 2, keep 0.5)": {
        "keep_ratio": 0.5,
        "encoder": "in_encoder",
        "encoder_layer": 2,
        "encoder_keep_ratio": 0.5,
    },  # fmt: skip
    "fastv 0.25 + vision_dtype bfloat16": {"vision_dtype": "bfloat16"},
}


def build(size: str, cameras: int, device: str, pruning: dict, weights: dict | None) -> PrunedPI0Policy:
    config = PrunedPI0Config(
        pruning=make_pruning_config("fastv", **{**BASE, **pruning}),
        arch_override=SIZES[size],
        **bench_features(cameras, 224),
        chunk_size=50, n_action_steps=50, num_inference_steps=10, device=device, push_to_hub=False,
    )  # fmt: skip
    torch.manual_seed(0)
    policy = PrunedPI0Policy(config).eval()
    if weights is not None:
        policy.load_state_dict(weights, strict=True)
    return policy.to(device)


def inputs(batch: int, cameras: int, device: str) -> dict:
    g = torch.Generator().manual_seed(1)
    images = [torch.rand(batch, 3, 224, 224, generator=g) * 2 - 1 for _ in range(cameras)]
    tokens = torch.randint(4, 1000, (batch, 48), generator=g)
    masks = torch.arange(48)[None] < 20
    out = dict(images=images, img_masks=[torch.ones(batch, dtype=torch.bool)] * cameras, lang_tokens=tokens,
               lang_masks=masks.expand(batch, -1), state=torch.randn(batch, 32, generator=g),
               noise=torch.randn(batch, 50, 32, generator=g))  # fmt: skip
    return {k: [t.to(device) for t in v] if isinstance(v, list) else v.to(device) for k, v in out.items()}


def time_calls(policy: PrunedPI0Policy, batch: dict, warmup: int, iters: int) -> tuple[list[float], dict]:
    model = policy.model
    report = PruningReport("fastv", {}, [f"cam{i}" for i in range(len(batch["images"]))])
    for _ in range(warmup):
        model.sample_actions(**batch)
    policy.reset()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        model.sample_actions(**batch)
        if batch["noise"].is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
        report.add_call(model.last_trace, times[-1] / 1e3, *model.layer_dims, model.vision_dims)
    return times, report.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", default=None, help="mid (CPU default) or full (GPU default)")
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=8)
    parser.add_argument("--out", default="outputs/bench/encoder.json")
    args = parser.parse_args()
    size = args.size or ("full" if args.device == "cuda" else "mid")
    print(__doc__.split("\n\n")[1])
    batch = inputs(args.batch, args.cameras, args.device)
    weights, runs = None, []
    with torch.no_grad():
        for name, pruning in VARIANTS.items():
            policy = build(size, args.cameras, args.device, pruning, weights)
            weights = weights or {k: v.detach().clone() for k, v in policy.state_dict().items()}
            times, summary = time_calls(policy, batch, args.warmup, args.iters)
            runs.append({"variant": name, "pruning": {**BASE, **pruning}, "median_ms": statistics.median(times),
                         "p95_ms": sorted(times)[round(0.95 * (len(times) - 1))], "times_ms": times,
                         "encoder_flop_ratio": summary["encoder_flop_ratio"],
                         "total_flop_ratio": summary["total_flop_ratio"]})  # fmt: skip
            del policy
    for run in runs:
        run["time_ratio"] = run["median_ms"] / runs[0]["median_ms"]
        print(f"{run['variant']:45s} median {run['median_ms']:8.1f} ms  p95 {run['p95_ms']:8.1f}  "
              f"time x{run['time_ratio']:.2f}  encoder FLOPs x{run['encoder_flop_ratio']:.2f}  "
              f"total FLOPs x{run['total_flop_ratio']:.2f}")  # fmt: skip
    meta = {"device": args.device, "size": size, "cameras": args.cameras, "batch": args.batch,
            "warmup": args.warmup, "iters": args.iters, "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}  # fmt: skip
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": __doc__.split("\n\n")[1], **meta, "runs": runs}, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
