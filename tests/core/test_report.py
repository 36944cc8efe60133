"""The pruning report: exact summary and episodes from running totals, bounded however long it runs."""

import json

import pytest
import torch

from lerobot_prune.flops import LayerDims
from lerobot_prune.metrics import CallTrace, PruningReport

DIMS = LayerDims(width=64, mlp_dim=128, num_heads=2, num_kv_heads=1, head_dim=32)


def _trace(kept: list[list[int]], fallback: bool = False, gate: float = 1.0) -> CallTrace:
    return CallTrace(kept_per_camera=torch.tensor(kept), valid_per_camera=torch.full((len(kept), 2), 256),
                     prefix_lengths=[300, 200], full_length=560, suffix_length=11, num_steps=3,
                     fallback=fallback, diagnostics={"gate": [gate] * len(kept), "note": "text"})  # fmt: skip


def _fill(report: PruningReport, episodes: int, calls: int) -> None:
    for _ in range(episodes):
        for c in range(calls):
            report.add_call(_trace([[64 + c, 0], [128, 32]], fallback=c == 0, gate=float(c % 2)),
                            (10 + c) / 1e3, DIMS, DIMS)  # fmt: skip
        report.end_episode()


def test_summary_and_episodes_are_exact():
    report = PruningReport("fastv", {"keep_ratio": 0.25}, ["a", "b"])
    _fill(report, episodes=2, calls=3)
    summary = report.summary()
    assert summary["calls"] == 6 and summary["fallback_calls"] == 2
    assert summary["mean_kept_visual_per_camera"] == {"a": pytest.approx((65 + 128) / 2), "b": 16.0}
    assert summary["mean_kept_visual"] == pytest.approx((65 + 160) / 2)
    assert summary["diagnostics_mean"] == {"gate": pytest.approx(1 / 3)}
    assert summary["latency_ms_median"] == pytest.approx(11.0)  # first call (10 ms) left out
    episodes = report.episodes()
    assert [e["episode"] for e in episodes] == [0, 1, 2, 3]  # 2 groups x 2 batch rows
    assert episodes[0] == {"episode": 0, "calls": 3, "mean_kept_visual_per_camera": {"a": 65.0, "b": 0.0},
                           "mean_latency_ms": pytest.approx(11.0), "fallback_calls": 1}  # fmt: skip
    assert episodes[1]["mean_kept_visual_per_camera"] == {"a": 128.0, "b": 32.0}


def test_report_size_is_bounded_for_long_runs():
    report = PruningReport("fastv", {}, ["a", "b"], max_call_records=50, max_episode_records=20)
    _fill(report, episodes=10, calls=10)
    size_100 = len(json.dumps(report.to_dict()))
    _fill(report, episodes=90, calls=10)
    assert report.summary()["calls"] == 1000 and len(report.calls) == 50 and report.calls_dropped == 950
    assert len(json.dumps(report.to_dict())) < 1.2 * size_100
    episodes = report.episodes()
    assert len(episodes) == 20 and report.episodes_dropped == 180 and episodes[0]["episode"] == 180
    assert "last 50 calls" in report.summary()["latency_note"]


@pytest.mark.parametrize(
    ("argv", "report_dir", "expected"),
    [
        (["lerobot-eval", "--output_dir=OUT/eval"], None, "OUT/eval"),
        (["lerobot-rollout", "--output_dir", "OUT/roll"], None, "OUT/roll"),
        (["lerobot-eval", "--output_dir=OUT/eval"], "OUT/explicit", "OUT/explicit"),
        (["lerobot-eval"], None, None),  # no folder given: logged only, nothing guessed
        (["python", "--output_dir=OUT/eval"], None, None),  # not a LeRobot command: the caller writes it
    ],
)
def test_reports_at_exit_go_only_where_the_caller_said(argv, report_dir, expected, tmp_path, monkeypatch):
    from lerobot_prune import make_pruning_config, reporting

    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "eval" / "old").mkdir(parents=True)
    (tmp_path / "outputs" / "eval" / "old" / "eval_info.json").write_text("{}")
    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    monkeypatch.setattr("sys.argv", argv)
    config = make_pruning_config("fastv", report_dir=report_dir and report_dir.replace("OUT", str(tmp_path)))
    report = PruningReport("fastv", {}, ["a", "b"])
    _fill(report, episodes=1, calls=2)
    monkeypatch.setattr(reporting, "_REPORTS", [(report, config)])
    written = reporting.write_reports()
    if expected is None:
        assert written == [] and not list(tmp_path.glob("**/pruning_report.json"))
    else:
        target = tmp_path / expected.replace("OUT/", "") / "pruning_report.json"
        assert written == [target] and json.loads(target.read_text())["summary"]["calls"] == 2
