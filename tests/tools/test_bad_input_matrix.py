"""Every strategy field × bad values through `lerobot-prune convert`: one line naming the field and the value.

The matrix comes from the registry, so a new strategy or field is covered without editing this file. Each
row is a value a user could type; the line must name the field and the value, and state what is valid
(a range, the choices, or the type). Values that are legal but unusual are listed in ACCEPTED.
"""

import math
from dataclasses import fields

import pytest

from lerobot_prune.registry import list_strategies
from lerobot_prune.tools.cli import main

BAD_VALUES = {
    "float": ["0", "-0.25", "1.5", "nan", "inf", "abc"],
    "int": ["-1", "99", "abc", "1.5"],
    "str": ["bogus"],
    "bool": ["maybe"],
}
LIST_VALUES = ["[abc]"]
SHARED = {"compact", "fallback", "report_dir", "in_training", "blind"}  # tested in test_bad_input_cli.py
NOT_TYPED = {"calibration_path", "seed", "preserve_positions"}  # paths / any int / bools tested elsewhere
# The encoder options are shared by every strategy: their rows run once, on ENCODER_STRATEGY.
ENCODER = {
    "encoder",
    "encoder_refresh",
    "encoder_layer",
    "encoder_keep_ratio",
    "pack_cameras",
    "vision_dtype",
}
ENCODER_STRATEGY = "fastv"
# Legal values: a VLA-Pruner window or ADP count longer than an episode, α = 0 (pure action score), a
# similarity threshold in [-1, 1], any finite non-negative motion threshold, DTP's tau/sigma/kernel above 1.
ACCEPTED = {
    ("window", "99"), ("alpha", "0"), ("similarity_threshold", "0"), ("similarity_threshold", "-0.25"),
    ("extrema_window", "99"), ("max_consecutive", "99"), ("min_delta_pos", "0"), ("min_delta_pos", "1.5"),
    ("tau", "1.5"), ("tau", "inf"), ("sigma", "1.5"), ("sigma", "inf"), ("kernel_size", "99"),
    ("encoder_refresh", "99"),
}  # fmt: skip
# DTP's default probe layers need 18 layers; the tiny backbone has 4, so DTP rows move them inside it.
EXTRA = {"dtp": ["--pruning.layers=[1,2]"]}
# encoder_layer is checked against the tower's depth when the mode uses it.
FIELD_EXTRA = {"encoder_layer": ["--pruning.encoder=in_encoder"]}


def _type_name(field) -> str:
    return field.type if isinstance(field.type, str) else field.type.__name__


def _cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for strategy, config_cls in list_strategies().items():
        for field in fields(config_cls):
            if field.name in SHARED | NOT_TYPED or (field.name in ENCODER and strategy != ENCODER_STRATEGY):
                continue
            kind = _type_name(field)
            for value in BAD_VALUES.get(kind, LIST_VALUES):
                if (field.name, value) not in ACCEPTED:
                    cases.append((strategy, field.name, kind, value))
    return cases


CASES = _cases()


def test_the_matrix_is_large():
    assert len(CASES) >= 200 and len({c[0] for c in CASES}) >= 14


def _names_the_value(line: str, value: str) -> bool:
    try:
        number = float(value)
    except ValueError:
        return repr(value) in line or value.strip("[]") in line
    return value in line or (math.isfinite(number) and repr(number) in line) or str(number) in line


@pytest.mark.parametrize(("strategy", "name", "kind", "value"), CASES, ids=["-".join(c) for c in CASES])
def test_bad_field_value_is_one_clear_line(
    tiny_base_checkpoint, tmp_path, capsys, strategy, name, kind, value
):
    argv = ["convert", f"--base={tiny_base_checkpoint}", f"--out={tmp_path / 'out'}", f"--pruning.type={strategy}",
            *EXTRA.get(strategy, []), *FIELD_EXTRA.get(name, []), f"--pruning.{name}={value}"]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("lerobot-prune convert: error: ") and f"pruning.{name}" in line, line
    assert _names_the_value(line, value), line
    valid = {"str": "choose one of", "bool": "into a bool"}.get(kind)
    if valid is not None:
        assert valid in line, line
    elif value in ("abc", "1.5") and kind == "int" or value == "abc":
        assert "Couldn't parse" in line and ("into an int" in line or "into a float" in line), line
    elif kind in ("float", "int"):
        assert any(word in line for word in ("outside", "must be", "choose one of")), line
    assert not (tmp_path / "out").exists()
