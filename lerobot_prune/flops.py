"""The FLOP model: this project's own per-layer count of the VLM / expert decoder layers (`layer_flops`) and
of the vision tower (`vit_flops`, `encoder_flops`), and the prefix KV-cache size.

Not a formula from a paper: the usual "2 FLOPs per multiply-add of every matmul" convention applied to the
layers' actual shapes (separate query and key lengths, Gemma's grouped/multi-query K/V heads, a
three-matrix gated MLP). The pruning report (`metrics.py`) and the benchmarks read it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerDims:
    width: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int

    @classmethod
    def from_hf(cls, config) -> LayerDims:
        return cls(config.hidden_size, config.intermediate_size, config.num_attention_heads,
                   config.num_key_value_heads, config.head_dim)  # fmt: skip


def layer_flops(d: LayerDims, num_queries: int, num_keys: int) -> int:
    """Estimated FLOPs of one decoder layer for `num_queries` new tokens attending to `num_keys` keys.

    With S_q = num_queries, S_k = num_keys, D = width, M = mlp_dim, H / H_kv = query / key-value heads
    and d_h = head_dim, counting 2 FLOPs per multiply-add of each matmul:

        F = 4·S_q·D·H·d_h          (Q and O projections)
          + 4·S_q·D·H_kv·d_h       (K and V projections; Gemma: H_kv = 1)
          + 4·S_q·S_k·H·d_h        (scores Q·Kᵀ and the attention-weighted sum of V)
          + 6·S_q·D·M              (gated MLP: gate, up and down projections)

    Norms, rotary embeddings, softmax, embeddings and the LM head are not counted. This is our own model,
    built from the matmul-counting convention of Kaplan et al. 2020 ("Scaling Laws for Neural Language
    Models", §2.1) on Gemma's layer structure. ADP's Eq. 19, F(S) ≈ 2S²D + 4SD² + 6SDM, has the same
    three parts (for S_q = S_k = S and H·d_h = H_kv·d_h = D) but weighs them differently (one FLOP per
    multiply-add for attention and projections, two for the MLP), so these figures are not Eq. 19's.
    """
    q_and_o = 2 * 2 * num_queries * d.width * d.num_heads * d.head_dim
    k_and_v = 2 * 2 * num_queries * d.width * d.num_kv_heads * d.head_dim
    scores_and_mix = 2 * 2 * num_queries * num_keys * d.num_heads * d.head_dim
    gated_mlp = 2 * 3 * num_queries * d.width * d.mlp_dim
    return q_and_o + k_and_v + scores_and_mix + gated_mlp


def vit_flops(width: int, mlp_dim: int, depth: int, num_patches: int, patch_size: int) -> int:
    """FLOPs (x2 multiply-adds) of a ViT vision tower on one image: patch embedding, then `depth` layers
    of full self-attention (Q/K/V/O projections, scores and mix) and a two-matrix MLP."""
    embed = 2 * num_patches * 3 * patch_size**2 * width
    attention = 2 * 4 * num_patches * width * width + 2 * 2 * num_patches * num_patches * width
    mlp = 2 * 2 * num_patches * width * mlp_dim
    return embed + depth * (attention + mlp)


@dataclass(frozen=True)
class VisionDims:
    """Vision-tower sizes for `encoder_flops`: `patches` per camera, each `patch_size` pixels square, a
    `depth`-layer ViT of `width` / `mlp_dim`, and `out_width` per visual token after the projector, which
    takes `patches_per_token` patches per token."""

    width: int
    mlp_dim: int
    depth: int
    patches: int
    patch_size: int
    out_width: int
    patches_per_token: int = 1


def encoder_flops(d: VisionDims, patches: list[list[int]]) -> int:
    """FLOPs (x2 multiply-adds) of one sample's tower pass: `patches[l][c]` patches of camera c entered
    layer l, each camera attending within itself. The patch convolution runs on every patch; the projector
    on the tokens of the last layer's patches. Norms, softmax and the pixel shuffle are not counted."""
    embed = 2 * len(patches[0]) * d.patches * 3 * d.patch_size**2 * d.width
    layers = sum(
        2 * 4 * n * d.width * d.width + 2 * 2 * n * n * d.width + 2 * 2 * n * d.width * d.mlp_dim
        for layer in patches
        for n in layer
    )
    projector = 2 * sum(patches[-1]) * d.width * d.out_width
    return embed + layers + projector


def kv_cache_bytes(vlm: LayerDims, prefix_lengths: list[int], bytes_per_value: int) -> int:
    """Bytes of the prefix keys and values one sample keeps for the denoising loop."""
    return sum(2 * n * vlm.num_kv_heads * vlm.head_dim * bytes_per_value for n in prefix_lengths)
