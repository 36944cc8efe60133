"""A new strategy through the public API alone, in under 30 lines (docs/ARCHITECTURE.md, "Adding a strategy").

It runs in a subprocess so the test session's registry (which the contract matrices are generated from)
never sees it."""

import json
import os
import subprocess
import sys
from pathlib import Path

TOY_STRATEGY = '''
from dataclasses import dataclass

from lerobot_prune import KeepRatioConfig, TopKScorer, register_strategy


@dataclass
class LoudestConfig(KeepRatioConfig):
    """Args:
    keep_ratio: Fraction of valid visual tokens kept.
    """

    keep_ratio: float = 0.25
    summary = "Keeps the visual tokens whose embeddings have the largest norm."


@register_strategy("loudest", LoudestConfig)
class LoudestPruner(TopKScorer):
    signals = frozenset({"visual_embeds"})

    def score(self, view):
        return view.signals.visual_embeds().float().norm(dim=-1)
'''
assert len(TOY_STRATEGY.strip().splitlines()) <= 30

RUN = """
import json, torch
import loudest
from conftest import make_pruned, model_inputs
from lerobot_prune import list_strategies
policy = make_pruned("loudest", num_cameras=2, keep_ratio=0.25)
policy.model.sample_actions(**model_inputs(2, 2))
view, selection = policy.model.last_view, policy.model.last_selection
norms = view.signals.visual_embeds().float().norm(dim=-1)
print(json.dumps({"listed": "loudest" in list_strategies(), "counts": selection.counts.tolist(),
                  "visual": int(view.visual_valid.shape[1]), "kept": selection.keep_idx.tolist(),
                  "expected": norms.topk(selection.keep_idx.shape[1], dim=1).indices.sort(dim=1).values.tolist()}))
"""


def test_a_toy_strategy_in_under_30_lines_runs_in_a_pruned_policy(tmp_path):
    (tmp_path / "loudest.py").write_text(TOY_STRATEGY)
    tests = Path(__file__).parents[1]
    done = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": f"{tmp_path}:{tests}", "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["listed"]
    assert result["counts"] == [result["visual"] // 4] * 2  # 25 % of each sample's visual tokens
    assert result["kept"] == result["expected"]  # exactly the largest-norm tokens, per sample
