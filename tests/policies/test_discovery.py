"""LeRobot finds the plugin the way every CLI does, in a fresh process."""

import subprocess
import sys
from importlib.metadata import distribution

import pytest

SCRIPT = """
from lerobot.utils.import_utils import register_third_party_plugins
register_third_party_plugins()
from lerobot.configs import PreTrainedConfig
from lerobot.policies.factory import get_policy_class, _make_processors_from_policy_config
cfg_cls = PreTrainedConfig.get_choice_class("pruned_pi0")
print(cfg_cls.__name__, get_policy_class("pruned_pi0").__name__)
import lerobot_policy_prune.pruned_pi0.processor_pruned_pi0 as p
print(p.make_pruned_pi0_pre_post_processors.__name__)
"""


def test_lerobot_discovers_pruned_pi0(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "PrunedPI0Config PrunedPI0Policy" in result.stdout
    assert "make_pruned_pi0_pre_post_processors" in result.stdout
    assert "Could not import third-party plugin" not in result.stderr


def test_distribution_name_and_no_generic_modules():
    assert distribution("lerobot_policy_prune").metadata["Name"] == "lerobot_policy_prune"
    result = subprocess.run(
        [sys.executable, "-c", "import policies"], capture_output=True, cwd="/", timeout=60
    )
    assert result.returncode != 0


@pytest.mark.parametrize("policy_type", ["pruned_pi0", "pruned_pi05", "pruned_smolvla"])
def test_policy_class_contract_of_lerobot(policy_type):
    """LeRobot's own `test_get_policy_and_config_classes`: `get_policy_class(name).name == name`, and the
    `config` annotation of the policy's `__init__` is a class that the type's config subclasses (a string,
    as `from __future__ import annotations` makes it, breaks the contract)."""
    import inspect

    from lerobot.policies.factory import get_policy_class, make_policy_config

    import lerobot_policy_prune  # noqa: F401

    policy_cls = get_policy_class(policy_type)
    policy_cfg = make_policy_config(policy_type)
    assert policy_cls.name == policy_type
    annotation = inspect.signature(policy_cls.__init__).parameters["config"].annotation
    assert isinstance(annotation, type) and issubclass(policy_cfg.__class__, annotation)
