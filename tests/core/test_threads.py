"""A pruned policy refuses LeRobot's threaded multi-task eval (`--env.max_parallel_tasks > 1`) before any
episode starts: its threads would share one policy and mix the strategies' per-episode state."""

import os
import shutil
import subprocess

import pytest
from conftest import make_pruned
from lerobot.scripts.lerobot_eval import eval_policy_all

from lerobot_prune import make_pruning_config
from lerobot_prune.tools.convert import convert
from lerobot_prune.tools.evalrun import parse_eval_config


class _NoEpisodeEnv:
    """A stand-in vector env that fails the test if an episode is started (`reset`)."""

    num_envs = 1

    def __init__(self):
        self.started = 0

    def reset(self, **kwargs):
        self.started += 1
        raise AssertionError("an episode started")

    def close(self):
        pass


def _eval_all(policy, envs, max_parallel_tasks):
    return eval_policy_all(envs, policy, None, None, None, None, n_episodes=1, start_seed=0,
                           max_parallel_tasks=max_parallel_tasks)  # fmt: skip


@pytest.mark.parametrize("strategy", ["vla_pruner", "none"])
def test_threaded_eval_tasks_fail_before_any_episode(strategy):
    policy = make_pruned(strategy, num_cameras=1)
    envs = {"a": {0: _NoEpisodeEnv()}, "b": {0: _NoEpisodeEnv()}}
    with pytest.raises(
        RuntimeError, match=r"max_parallel_tasks > 1 .* --env.max_parallel_tasks=1, .*--backend=ray"
    ):
        _eval_all(policy, envs, max_parallel_tasks=2)
    assert all(env.started == 0 for group in envs.values() for env in group.values())
    # the sequential path is not refused: it gets as far as starting the episode
    with pytest.raises(AssertionError, match="an episode started"):
        _eval_all(policy, {"a": {0: _NoEpisodeEnv()}}, max_parallel_tasks=1)


def test_in_process_tools_refuse_parallel_tasks_when_parsing(tiny_base_checkpoint, tmp_path):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.5))
    args = [f"--policy.path={ckpt}", "--env.type=pusht", "--env.max_parallel_tasks=2", "--policy.device=cpu",
            f"--output_dir={tmp_path / 'out'}"]  # fmt: skip
    with pytest.raises(ValueError, match=r"--env.max_parallel_tasks=2 runs LeRobot's eval tasks on threads"):
        parse_eval_config(args)


@pytest.mark.sim
def test_lerobot_eval_with_parallel_tasks_stops_with_the_alternatives(tiny_base_checkpoint, tmp_path):
    ckpt = convert(tiny_base_checkpoint, tmp_path / "ckpt", make_pruning_config("fastv", keep_ratio=0.5))
    done = subprocess.run(
        [shutil.which("lerobot-eval"), f"--policy.path={ckpt}", "--env.type=pusht", "--env.episode_length=5",
         "--eval.n_episodes=1", "--eval.batch_size=1", "--eval.use_async_envs=false", "--policy.device=cpu",
         "--env.max_parallel_tasks=2", f"--output_dir={tmp_path / 'eval'}"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode != 0
    assert "RuntimeError: --env.max_parallel_tasks > 1 runs LeRobot's eval tasks on threads" in done.stderr
    assert "lerobot-prune sweep --backend=ray" in done.stderr
    assert not (tmp_path / "eval" / "eval_info.json").exists()
    assert not list((tmp_path / "eval").glob("videos/**/*.mp4"))
