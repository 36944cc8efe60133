"""LeRobot finds the plugin the way every CLI does, in a fresh process."""

import subprocess
import sys
from importlib.metadata import distribution

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
