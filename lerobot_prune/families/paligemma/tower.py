"""π0 / π0.5's SigLIP tower and projector, layer by layer, for `pruning.encoder` (see `engine.encoder`).

Calls the upstream modules (`SiglipVisionEmbeddings`' patch convolution and position table, the encoder
layers, the post-layernorm, PaliGemma's projector); a visual token is one patch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..siglip_layers import SiglipLayersTower


class SiglipTower(SiglipLayersTower):
    def __init__(self, model, dtype: torch.dtype | None):
        paligemma = model.paligemma_with_expert.paligemma.model
        self.model = model
        self.vision = paligemma.vision_tower.vision_model
        self.projector = paligemma.multi_modal_projector
        self.depth = len(self.vision.encoder.layers)
        embeddings = self.vision.embeddings
        device = embeddings.position_ids.device
        self.token_patches = torch.arange(embeddings.num_patches, device=device)[:, None]
        self.dtype = dtype

    def patch_embeds(self, images: Tensor) -> Tensor:
        """`[B, N, D]`; float32 input as upstream's `embed_image`."""
        conv = self.vision.embeddings.patch_embedding
        return conv(images.to(torch.float32).to(conv.weight.dtype)).flatten(2).transpose(1, 2)

    def position_embeds(self) -> Tensor:
        embeddings = self.vision.embeddings
        return embeddings.position_embedding(embeddings.position_ids)[0]

    def finish(self, hidden: Tensor) -> Tensor:
        return self.projector(self.vision.post_layernorm(hidden))

    def upstream(self, images: list[Tensor]) -> list[Tensor]:
        return [self.model.paligemma_with_expert.embed_image(image) for image in images]
