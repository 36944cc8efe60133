"""SmolVLA's SmolVLM vision tower and connector, layer by layer, for `pruning.encoder` (see `engine.encoder`).

Calls the upstream modules (the patch convolution and position table of `SmolVLMVisionEmbeddings`, the
encoder layers, the post-layernorm, the connector's projection). A visual token is a `s x s` block of
patches (`s` = `scale_factor`): the connector's pixel shuffle concatenates, for token `(r, c)` of the
`n/s x n/s` token grid, the features of patches `(r*s + i, c*s + j)` in the order `i*s + j`, so `finish`
only reshapes `[B, K * s², D]` to `[B, K, s² * D]` before the projection.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..siglip_layers import SiglipLayersTower


def token_patch_grid(patches_per_side: int, scale: int) -> Tensor:
    """`[T, s²]` raster index of the patches behind each token, in pixel-shuffle order."""
    tokens_per_side = patches_per_side // scale
    r, c, i, j = torch.meshgrid(*(torch.arange(n) for n in (tokens_per_side, tokens_per_side, scale, scale)),
                                indexing="ij")  # fmt: skip
    return ((r * scale + i) * patches_per_side + c * scale + j).reshape(tokens_per_side**2, scale**2)


class SmolVLMTower(SiglipLayersTower):
    def __init__(self, model, dtype: torch.dtype | None):
        self.model = model
        vlm = model.vlm_with_expert.get_vlm_model()
        self.vision, self.connector = vlm.vision_model, vlm.connector
        self.depth = len(self.vision.encoder.layers)
        scale = self.connector.scale_factor
        per_side = model.tokens_per_camera**0.5 * scale
        if per_side != int(per_side):
            raise ValueError(
                f"pruning.encoder needs a square image grid; got {model.tokens_per_camera} tokens."
            )
        device = self.vision.embeddings.position_embedding.weight.device
        self.token_patches = token_patch_grid(int(per_side), scale).to(device)
        self.dtype = dtype

    def patch_embeds(self, images: Tensor) -> Tensor:
        """`[B, N, D]`; the input cast to the tower's dtype as upstream's `embed_image`."""
        conv = self.vision.embeddings.patch_embedding
        return conv(images.to(self.vision.dtype)).flatten(2).transpose(1, 2)

    def position_embeds(self) -> Tensor:
        """Upstream's position embedding of a full image, taken from its own embedding pass (its bucketed
        position ids depend on the input dtype), computed once per device and kept on the model."""
        weight = self.vision.embeddings.patch_embedding.weight
        cache = self.model.__dict__.setdefault("_tower_positions", {})
        key = (weight.device, weight.dtype)
        if key not in cache:
            embeddings, seen = self.vision.embeddings, []
            side = int(self.token_patches.numel() ** 0.5) * embeddings.patch_size
            hook = embeddings.position_embedding.register_forward_hook(lambda m, args, out: seen.append(out))
            try:
                with torch.no_grad():
                    grid = side // embeddings.patch_size
                    mask = torch.ones(1, grid, grid, dtype=torch.bool, device=weight.device)
                    embeddings(
                        torch.zeros(1, 3, side, side, dtype=self.vision.dtype, device=weight.device), mask
                    )
            finally:
                hook.remove()
            cache[key] = seen[0][0]
        return cache[key]

    def finish(self, hidden: Tensor) -> Tensor:
        hidden = self.vision.post_layernorm(hidden)
        per_token = self.patches_per_token
        blocks = hidden.reshape(hidden.shape[0], hidden.shape[1] // per_token, per_token * hidden.shape[2])
        return self.connector.modality_projection(blocks)

    def upstream(self, images: list[Tensor]) -> list[Tensor]:
        return [self.model.vlm_with_expert.embed_image(image) for image in images]
