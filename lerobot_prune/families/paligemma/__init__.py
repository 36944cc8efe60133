"""PaliGemma backbones: π0 and π0.5 (Gemma VLM + SigLIP, Gemma action expert)."""

from ..registry import Family, register_family
from . import bench, checkpoint, convert_options, tiny

FAMILY = register_family(
    Family(
        name="paligemma",
        policy_types=("pi0", "pi05"),
        check_architecture=checkpoint.check_architecture,
        carry_convert_options=convert_options.carry_convert_options,
        init_tiny=tiny.init_tiny,
        bench_parts=bench.bench_parts,
    )
)
