"""`--policy.type=pruned_<x> --policy.pretrained_path=<checkpoint>`: the checkpoint's saved settings win.

With `--policy.type`, LeRobot 0.6.1 builds the policy config from the class defaults plus the command
line and then loads only the weights from `pretrained_path`; the checkpoint's `config.json` is never read,
so its architecture, features, chunk size and strategy would silently be replaced by defaults. Each
`pruned_*` config calls `adopt_saved_config` first thing in `__post_init__`: in exactly that form of
command it rebuilds itself as `--policy.path=<checkpoint>` does: the checkpoint's `config.json` (a base
π0 / π0.5 / SmolVLA one re-typed as `lerobot-prune convert` does) with only the `--policy.*` flags the
user typed applied on top, read with LeRobot's own `lerobot.configs.parser` helpers (the ones LeRobot's
`--policy.path` handling uses). A `--policy.pruning.type` other than the saved one starts that strategy
from its defaults, since the saved strategy's fields do not apply to it.
"""

from __future__ import annotations

import json
import tempfile
from contextvars import ContextVar
from pathlib import Path

_ADOPTING: ContextVar[bool] = ContextVar("lerobot_prune_adopting_saved_config", default=False)


def adopt_saved_config(config) -> bool:
    """Replaces `config`'s fields by the checkpoint's saved ones plus the command-line flags.

    Returns True when it did (the config is then complete and validated), False when the command is not
    `--policy.type=<config.type> --policy.pretrained_path=...` (every other way of building a config).
    """
    if _ADOPTING.get() or config.pretrained_path is None:
        return False
    from lerobot.configs import parser

    cli_path = parser.parse_arg("policy.pretrained_path")
    if (
        parser.get_type_arg("policy") != config.type
        or parser.get_path_arg("policy") is not None
        or cli_path is None
        or Path(cli_path) != Path(config.pretrained_path)
    ):
        return False
    token = _ADOPTING.set(True)
    try:
        saved = load_saved_config(cli_path, config.type, parser.get_cli_overrides("policy") or [])
    finally:
        _ADOPTING.reset(token)
    config.__dict__.update(saved.__dict__)
    return True


def load_saved_config(checkpoint: str | Path, policy_type: str, cli_overrides: list[str]):
    """The `policy_type` config of `checkpoint` (pruned, or a base one re-typed) with `cli_overrides`."""
    from lerobot_prune.families import family_for
    from lerobot_prune.families.base_checkpoint import base_types, read_base_config, resolve_checkpoint

    folder = resolve_checkpoint(checkpoint)
    data = read_base_config(folder)
    if base_types()[data["type"]] != policy_type:
        raise ValueError(
            f"--policy.pretrained_path={checkpoint} is a {data['type']!r} checkpoint, which loads as "
            f"--policy.type={base_types()[data['type']]}, not {policy_type}."
        )
    if data["type"] != policy_type:
        family_for(policy_type).carry_convert_options(data, folder, None, None, store_tokenizer=False)
    data["type"] = policy_type
    new_strategy = _pruning_type(cli_overrides)
    if new_strategy is not None and new_strategy != (data.get("pruning") or {}).get("type"):
        data.pop("pruning", None)
    return config_from_dict(data, cli_overrides=cli_overrides)


def _pruning_type(args: list[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg.startswith("--pruning.type="):
            return arg.split("=", 1)[1]
        if arg == "--pruning.type" and i + 1 < len(args):
            return args[i + 1]
    return None


def config_from_dict(data: dict, cli_overrides: list[str] | None = None):
    """The `PreTrainedConfig` a config.json with `data` loads as (draccus validates every field), with
    `cli_overrides` (`["--chunk_size=5", ...]`) applied as `--policy.path` applies them."""
    from lerobot.configs import PreTrainedConfig

    import lerobot_policy_prune  # noqa: F401  (registers the pruned_* types)

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.json").write_text(json.dumps(data))
        return PreTrainedConfig.from_pretrained(tmp, cli_overrides=list(cli_overrides or []))
