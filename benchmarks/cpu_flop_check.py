"""CPU check that pruning pays in wall-clock time as the FLOP count says it should.

Runs `lerobot-prune bench` on the mid-size π0 (compute-bound on a CPU: matmuls dominate) and checks, for
each pruned run, that its time ratio to LeRobot's unmodified π0 (same weights, same process) is within
`--tolerance` (relative) of its phase-weighted FLOP ratio: the FLOP ratio of the vision tower (1), the
prefix pass and the denoising loop, weighted by each phase's share of LeRobot's call time. On a CPU the
expert's 51-row matmuls run at about half the throughput of the prefix's, so the plain end-to-end FLOP
ratio (also printed) under-predicts the time of strategies that prune before the VLM. Exits 1 and names
the runs that miss.

    python benchmarks/cpu_flop_check.py [--out outputs/bench/cpu_flop_check.json] [--tolerance 0.2]
"""

from __future__ import annotations

import argparse
import sys

from lerobot_prune.bench import BenchArgs, command_line, run_bench

# Strategies whose own work is small next to the layers they save (the FLOP count leaves it out).
CHECKED = ["random", "fastv", "ties", "adp"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="outputs/bench/cpu_flop_check.json")
    parser.add_argument("--tolerance", type=float, default=0.2)
    parser.add_argument("--iters", type=int, default=5)
    cli = parser.parse_args()
    args = BenchArgs(policy_type="pi0", size="mid", cameras=2, dtype="float32", device="cpu", num_steps=10,
                     warmup=2, iters=cli.iters, profile=False, strategies=CHECKED, keep_ratios=[0.5, 0.25], out=cli.out)  # fmt: skip
    argv = [f"--{k}={v}" for k, v in vars(args).items() if k not in ("strategies", "keep_ratios")]
    result = run_bench(args, command=f"python benchmarks/cpu_flop_check.py ({command_line(argv)})")
    misses = []
    print(
        f"\nCheck: |time ratio / phase-weighted FLOP ratio - 1| <= {cli.tolerance:.0%} "
        "(the end-to-end FLOP ratio is shown for reference)"
    )
    for r in result["runs"][1:]:
        deviation = r["time_ratio"] / r["phase_weighted_flop_ratio"] - 1
        raw = r["time_ratio"] / r["e2e_flop_ratio"] - 1
        ok = abs(deviation) <= cli.tolerance
        print(f"  {r['strategy']:<12} keep {r['keep_ratio']:<6} time ratio {r['time_ratio']:.3f}  "
              f"phase-weighted FLOP ratio {r['phase_weighted_flop_ratio']:.3f} ({deviation:+.1%})  "
              f"end-to-end FLOP ratio {r['e2e_flop_ratio']:.3f} ({raw:+.1%})  {'ok' if ok else 'MISS'}")  # fmt: skip
        if not ok:
            misses.append(f"{r['strategy']}@{r['keep_ratio']}")
    if misses:
        print(f"FAILED: {misses} are off their FLOP ratio by more than {cli.tolerance:.0%}.", file=sys.stderr)
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
