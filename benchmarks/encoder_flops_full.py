"""Ideal speed-up of encoder-side selection at the real model sizes, from this package's FLOP model.

Method: the FLOPs `pruning_report.json` would report (`flops.layer_flops` per VLM / expert layer,
`flops.encoder_flops` for the vision tower and projector) for one call of full-size π0 (PaliGemma: Gemma 2B
+ Gemma 300M expert from LeRobot's `get_gemma_config`, SigLIP-So400m at 224 px) and SmolVLA (SmolVLM2-500M:
the first 16 of its 32 text layers, its 12-layer SigLIP at 512 px with 4x4 pixel shuffle, LeRobot's expert
at 0.75 width), 3 cameras, a 48-token prompt, chunk 50, 10 denoising steps. FastV keeps 25 % of the visual
tokens from VLM layer 2 on:
  - post-encoder: the tower runs on every patch (what every published method does);
  - carry_over (refresh 4 and 8): one full call, then three (seven) calls whose tower runs only on the
    carried patches and whose VLM sees only the carried tokens, averaged over the cycle (and a carried call
    alone: the limit of long refresh intervals);
  - in_encoder (layer 1, keep 0.5) + FastV 0.5: the tower's first layer on every patch, the rest on half,
    the strategy halves those again (25 % kept in all).
Reported: total FLOPs (tower + VLM prefix + denoising) per call, the ratio to unpruned and its inverse (the
ideal speed-up). No timing: `encoder_bench.py` measures wall-clock.

    python benchmarks/encoder_flops_full.py [--out benchmarks/results/encoder_flops_full.json]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from lerobot.policies.pi0.modeling_pi0 import get_gemma_config
from lerobot.policies.smolvla.smolvlm_with_expert import get_intermediate_size

from lerobot_prune.flops import LayerDims, VisionDims, encoder_flops, layer_flops

CAMERAS, PROMPT, CHUNK, STEPS, PRUNE_LAYER = 3, 48, 50, 10, 2


@dataclass(frozen=True)
class Model:
    name: str
    vlm: LayerDims
    expert: LayerDims
    depth: int
    vision: VisionDims
    prefix_extra: int  # non-visual prefix tokens besides the prompt (SmolVLA: its state token)
    suffix: int  # expert tokens per step (π0: state + chunk)

    @property
    def tokens_per_camera(self) -> int:
        return self.vision.patches // self.vision.patches_per_token


def gemma(variant: str) -> LayerDims:
    g = get_gemma_config(variant)
    return LayerDims(g.width, g.mlp_dim, g.num_heads, g.num_kv_heads, g.head_dim)


def models() -> list[Model]:
    siglip = VisionDims(width=1152, mlp_dim=4304, depth=27, patches=256, patch_size=14, out_width=2048)
    expert_width = int(960 * 0.75)
    smolvlm_vision = VisionDims(width=768, mlp_dim=3072, depth=12, patches=1024, patch_size=16, out_width=960,
                                patches_per_token=16)  # fmt: skip
    return [
        Model("pi0", gemma("gemma_2b"), gemma("gemma_300m"), 18, siglip, 0, CHUNK + 1),
        Model(
            "smolvla",
            LayerDims(960, 2560, 15, 5, 64),
            LayerDims(expert_width, get_intermediate_size(expert_width), 15, 5, 64),
            16,
            smolvlm_vision,
            1,
            CHUNK,
        ),  # fmt: skip
    ]


def call_flops(m: Model, lengths: list[int], tower_patches: list[int]) -> dict:
    """One call: `lengths[l]` prefix tokens at VLM layer l, `tower_patches[l]` patches per camera at tower
    layer l."""
    prefix = sum(layer_flops(m.vlm, n, n) for n in lengths)
    denoise = STEPS * sum(layer_flops(m.expert, m.suffix, n + m.suffix) for n in lengths)
    tower = encoder_flops(m.vision, [[p] * CAMERAS for p in tower_patches])
    return {"tower": tower, "prefix": prefix, "denoise": denoise, "total": tower + prefix + denoise}


def scenarios(m: Model) -> dict[str, dict]:
    text = PROMPT + m.prefix_extra
    full_tokens, per_token = m.tokens_per_camera, m.vision.patches_per_token
    full = CAMERAS * full_tokens + text
    quarter = CAMERAS * round(0.25 * full_tokens) + text
    half = CAMERAS * round(0.5 * full_tokens) + text
    all_patches = [m.vision.patches] * m.vision.depth
    post = [full] * PRUNE_LAYER + [quarter] * (m.depth - PRUNE_LAYER)
    carried = call_flops(m, [quarter] * m.depth, [round(0.25 * full_tokens) * per_token] * m.vision.depth)
    refresh = call_flops(m, post, all_patches)
    return {
        "unpruned": call_flops(m, [full] * m.depth, all_patches),
        "post_encoder_fastv_0.25": refresh,
        "carry_over_refresh4_fastv_0.25": {k: (refresh[k] + 3 * carried[k]) / 4 for k in refresh},
        "carry_over_refresh8_fastv_0.25": {k: (refresh[k] + 7 * carried[k]) / 8 for k in refresh},
        "carried_call_alone_fastv_0.25": carried,
        "in_encoder_l1_keep0.5_fastv_0.5": call_flops(
            m,
            [half] * PRUNE_LAYER + [quarter] * (m.depth - PRUNE_LAYER),
            [m.vision.patches] + [round(0.5 * full_tokens) * per_token] * (m.vision.depth - 1),
        ),  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/encoder_flops_full.json"))
    args = parser.parse_args()
    results = {}
    for m in models():
        rows = scenarios(m)
        base = rows["unpruned"]["total"]
        results[m.name] = {
            "model": {k: v for k, v in asdict(m).items() if k != "name"},
            "tower_share_unpruned": rows["unpruned"]["tower"] / base,
            "scenarios": {
                name: {
                    **{k: v / 1e9 for k, v in r.items()},
                    "total_flop_ratio": r["total"] / base,
                    "ideal_speedup": base / r["total"],
                }
                for name, r in rows.items()
            },  # fmt: skip
        }
        print(f"{m.name}: tower {results[m.name]['tower_share_unpruned']:.0%} of the unpruned call "
              f"({base / 1e9:.0f} GFLOPs, {CAMERAS} cameras)")  # fmt: skip
        for name, r in results[m.name]["scenarios"].items():
            print(f"  {name:34s} {r['total']:8.0f} GFLOPs  ratio {r['total_flop_ratio']:.3f}  "
                  f"ideal speed-up x{r['ideal_speedup']:.2f}")  # fmt: skip
    method = __doc__.split("\n\n")[1].replace("\n", " ")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"method": method, "cameras": CAMERAS, "prompt_tokens": PROMPT,
                                    "chunk": CHUNK, "steps": STEPS, "results": results}, indent=2))  # fmt: skip
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
