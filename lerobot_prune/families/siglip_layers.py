"""The layer access both families' vision towers share: Hugging Face SigLIP-style encoder layers
(`layer_norm1`, `self_attn` with `q_proj` / `k_proj`, `num_heads`, `head_dim`, `scale`) under
`self.vision.encoder.layers`, as in `SiglipVisionTransformer` and `SmolVLMVisionTransformer`."""

from __future__ import annotations

from torch import Tensor

from ..engine.encoder import VisionTower


class SiglipLayersTower(VisionTower):
    """A `VisionTower` whose `run_layer` / `query_key` call the upstream layers of `self.vision.encoder`."""

    vision: object

    def run_layer(self, index: int, hidden: Tensor, mask: Tensor | None) -> Tensor:
        return self.vision.encoder.layers[index](hidden, mask)

    def query_key(self, index: int, hidden: Tensor) -> tuple[Tensor, Tensor, float]:
        layer = self.vision.encoder.layers[index]
        attn, normed = layer.self_attn, layer.layer_norm1(hidden)
        shape = (*hidden.shape[:2], attn.num_heads, attn.head_dim)
        return (attn.q_proj(normed).view(shape).transpose(1, 2), attn.k_proj(normed).view(shape).transpose(1, 2),
                attn.scale)  # fmt: skip
