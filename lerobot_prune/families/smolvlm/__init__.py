"""The SmolVLM backbone: SmolVLA (SmolVLM2 text model + SigLIP, a narrower Llama action expert)."""

from ..registry import Family, register_family
from . import bench, checkpoint, convert_options, tiny

FAMILY = register_family(
    Family(
        name="smolvlm",
        policy_types=("smolvla",),
        check_architecture=checkpoint.check_architecture,
        carry_convert_options=convert_options.carry_convert_options,
        init_tiny=tiny.init_tiny,
        bench_parts=bench.bench_parts,
    )
)
