"""`CallRecorder`: the host-side record of each pruned or unpruned call (`last_trace`, `call_index`), mixed
into `PruningEngine`; the adapter supplies `tokens_per_camera`, `full_prefix_length`, `suffix_length`,
`vlm_depth` and `default_num_steps`."""

from __future__ import annotations

import torch
from torch import Tensor

from ..metrics import CallTrace
from ..selection import TokenSelection
from ..strategies.base import PruningView
from .prefix import count_per_camera, img_masks_to_valid


class CallRecorder:
    @torch.compiler.disable
    def _record_call(self, view: PruningView, selection: TokenSelection | None, prefix_lengths: list[int],
                     num_cameras: int, lang_masks: Tensor, num_steps: int, fell_back: bool,
                     reruns: int) -> None:  # fmt: skip
        """Host-side bookkeeping after a pruned call: the trace (reads counts to the host) and `call_index`.

        Kept out of torch.compile: a changing Python int read in a compiled frame is guarded on and would
        recompile every call, and the trace's `.cpu()` copies belong after the device work anyway.
        """
        ids, valid, cameras = view.camera_ids, view.visual_valid, view.num_cameras
        valid_per_camera = count_per_camera(ids, None, cameras, valid)
        if self.pruner.config.encoder == "in_encoder":  # counted before the tower dropped patches
            valid_per_camera = (valid_per_camera > 0).long() * self.tokens_per_camera
        self.last_trace = CallTrace(
            kept_per_camera=count_per_camera(ids, selection, cameras, valid).cpu(),
            valid_per_camera=valid_per_camera.cpu(),
            prefix_lengths=prefix_lengths,
            full_length=self.full_prefix_length(num_cameras, lang_masks),
            suffix_length=self.suffix_length,
            num_steps=num_steps,
            fallback=fell_back,
            extra_prefix_passes=reruns,
            extra_steps=reruns,
            diagnostics=self.pruner.diagnostics(),
            encoder_patches=self.encoder_patches.cpu() if self.encoder_patches is not None else None,
        )
        self.call_index += 1

    @torch.compiler.disable
    def _record_full_vision_call(self, img_masks, lang_masks, num_steps) -> None:
        """`_record_call` of an unpruned call."""
        self.last_trace = self._full_vision_trace(img_masks, lang_masks, num_steps)
        self.last_selection = None
        self.call_index += 1

    def _full_vision_trace(self, img_masks, lang_masks, num_steps) -> CallTrace:
        valid = count_per_camera(
            torch.arange(len(img_masks), device=lang_masks.device).repeat_interleave(self.tokens_per_camera),
            None, len(img_masks), img_masks_to_valid(img_masks, self.tokens_per_camera),
        ).cpu()  # fmt: skip
        length = self.full_prefix_length(len(img_masks), lang_masks)
        return CallTrace(
            kept_per_camera=valid,
            valid_per_camera=valid,
            prefix_lengths=[length] * self.vlm_depth,
            full_length=length,
            suffix_length=self.suffix_length,
            num_steps=num_steps or self.default_num_steps,
            fallback=False,
        )
