"""`lerobot-prune sweep`: the grid, shards, resume, the statistics table and plots, and identical per-episode
results from the local and the Ray backend on LeRobot's PushT sim."""

import json

import pytest
from PIL import Image

from lerobot_prune import list_strategies
from lerobot_prune.tools.sweep import SweepArgs, main, make_grid, manifest_cells, plan_shards
from lerobot_prune.tools.sweep_manifest import check_manifest, manifest, write_manifest
from lerobot_prune.tools.sweep_results import (
    LATENCY_FILE,
    REPLAY_LATENCY,
    markdown_table,
    result_rows,
    write_results,
)

EVAL = ["--env.type=pusht", "--eval.use_async_envs=false", "--policy.device=cpu", "--env.episode_length=10",
        "--eval.n_episodes=4", "--eval.batch_size=1", "--seed=100"]  # fmt: skip


def test_grid_rejects_bad_strategies_before_any_work(tiny_base_checkpoint):
    with pytest.raises(ValueError, match=r"unknown \['fastvv'\]; known strategies: none, "):
        make_grid(SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["fastvv"]))
    grid = make_grid(SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["dtp", "compact"],
                               dtp_taus=[0.5, 1.0], settings={"dtp": {"layers": [1, 2]}}))  # fmt: skip
    assert [(c.name, c.setting) for c in grid] == [("dtp_tau0.5", "tau=0.5"), ("dtp_tau1.0", "tau=1.0"),
                                                   ("compact", "")]  # fmt: skip
    assert grid[1].pruning.layers == [1, 2]
    blind = make_grid(SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["none"],
                                settings={"none": {"blind": True}}))  # fmt: skip
    assert [c.name for c in blind] == ["none_blind"] and blind[0].pruning.blind
    encoder = make_grid(SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["fastv"], keep_ratios=[0.5],
                                  settings={"fastv": {"encoder": "in_encoder", "encoder_keep_ratio": 0.5}}))  # fmt: skip
    assert [c.name for c in encoder] == ["fastv_keep_ratio0.5_in_encoder"]  # beside post-encoder cells
    assert encoder[0].pruning.encoder_keep_ratio == 0.5


def test_grid_all_strategies_compact_axis_and_ties_calibration(tiny_base_checkpoint):
    args = SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["all"], keep_ratios=[0.25],
                     dtp_taus=[0.5], compact=[False, True])  # fmt: skip
    with pytest.raises(ValueError, match=r"TIES cells \['ties_keep_ratio0.25', 'ties_keep_ratio0.25_compact'\] "
                       r"need calibration statistics: pass --ties_calibration.dataset_repo_id"):  # fmt: skip
        make_grid(args)
    args.ties_calibration.dataset_repo_id, args.ties_calibration.dataset_root = "local/x", "/data/x"
    cells = make_grid(args)
    assert list(dict.fromkeys(c.pruning.type for c in cells)) == list(list_strategies())
    by_name = {c.name: c for c in cells}
    assert by_name["none"].pruning.compact is False and by_name["none_compact"].pruning.compact is True
    assert by_name["fastv_keep_ratio0.25_compact"].pruning.keep_ratio == 0.25
    assert [c.name for c in cells if c.pruning.type == "compact"] == ["compact"]  # compact by definition
    assert len(cells) == 2 * (len(list_strategies()) - 1) + 1


def test_shards_cover_consecutive_seeds():
    shards = plan_shards("c", 1000, 5, 2, 2)
    assert [(s.seed, s.n_episodes, s.batch_size, s.label) for s in shards] == [
        (1000, 2, 2, "seeds1000-1001"), (1002, 2, 2, "seeds1002-1003"), (1004, 1, 1, "seeds1004-1004")]  # fmt: skip
    assert [(s.seed, s.n_episodes) for s in plan_shards("c", 7, 5, 1, 0)] == [(7, 5)]


def test_manifest_refuses_another_sweep_unless_overwrite(tmp_path):
    check_manifest(tmp_path, {"eval_args": ["--eval.n_episodes=4"]}, overwrite=False)  # nothing there yet
    write_manifest(tmp_path, {"eval_args": ["--eval.n_episodes=4"]})
    (tmp_path / "cells").mkdir()
    check_manifest(tmp_path, {"eval_args": ["--eval.n_episodes=4"]}, overwrite=False)  # same: resumes
    assert (tmp_path / "cells").is_dir()
    with pytest.raises(ValueError, match=r"other arguments \(differing: eval_args\).*--overwrite=true"):
        check_manifest(tmp_path, {"eval_args": ["--eval.n_episodes=8"]}, overwrite=False)
    check_manifest(tmp_path, {"eval_args": ["--eval.n_episodes=8"]}, overwrite=True)
    assert not (tmp_path / "cells").exists() and not (tmp_path / "sweep.json").exists()


def test_manifest_adds_cells_but_refuses_a_changed_cell(tmp_path):
    first = {
        "eval_args": ["--seed=1"],
        "cells": {"none": {"type": "none"}, "fastv_keep_ratio0.5": {"k": 0.5}},
    }
    write_manifest(tmp_path, first)
    more = {"eval_args": ["--seed=1"], "cells": {"fastv_keep_ratio0.5": {"k": 0.5}, "random": {"type": "r"}}}
    merged = check_manifest(tmp_path, more, overwrite=False)
    assert list(merged["cells"]) == ["none", "fastv_keep_ratio0.5", "random"]
    changed = {"eval_args": ["--seed=1"], "cells": {"fastv_keep_ratio0.5": {"k": 0.25}}}
    with pytest.raises(ValueError, match=r"differing: cells.fastv_keep_ratio0.5"):
        check_manifest(tmp_path, changed, overwrite=False)


def _record(cell, strategy, successes, compact=False, tasks=("a",)):
    episodes = [{"task": t, "seed": i, "success": s, "sum_reward": float(s)} for t in tasks
                for i, s in enumerate(successes)]  # fmt: skip
    return {"cell": cell, "strategy": strategy, "setting": "keep_ratio=0.5" if strategy != "none" else "",
            "compact": compact, "avg_sum_reward": 0.5, "flop_ratio": 1.0 if strategy == "none" else 0.5,
            "latency_ms_p50": 10.0, "latency_ms_p95": 12.0, "mean_kept_visual": 64, "run_dirs": ["r"],
            "episodes": episodes}  # fmt: skip


def test_rows_pair_each_cell_with_none_on_the_same_seeds(tmp_path):
    none = _record("none", "none", [True] * 8 + [False] * 2, tasks=("a", "b"))
    fastv = _record("fastv", "fastv", [True, False, False, False, False, True, True, True, True, True],
                    tasks=("a", "b"))  # fmt: skip
    rows = write_results([fastv, none], tmp_path)
    assert rows[1]["success_pc"] == 80 and rows[1]["ci95_low_pc"] == pytest.approx(58.40, abs=0.01)
    assert rows[1]["per_task"]["a"]["ci95_low_pc"] == pytest.approx(49.02, abs=0.01)  # 8/10
    assert rows[1]["vs_none_p"] is None
    assert (rows[0]["vs_none_b"], rows[0]["vs_none_c"], rows[0]["vs_none_pairs"]) == (8, 4, 20)
    assert rows[0]["vs_none_p"] == pytest.approx(2 * (1 + 12 + 66 + 220 + 495) / 4096)
    assert rows[0]["per_task"]["b"] == {"n_episodes": 10, "successes": 6, "success_pc": 60.0,
                                        "ci95_low_pc": pytest.approx(31.27, abs=0.01),
                                        "ci95_high_pc": pytest.approx(83.18, abs=0.01)}  # fmt: skip
    table = (tmp_path / "results.md").read_text()
    assert "| fastv | 60.0 [38.7, 78.1] | 20 |" in table and "| 8 / 4, 0.388 |" in table
    assert "| fastv | 60.0 [31.3, 83.2] | 60.0 [31.3, 83.2] |" in table  # per task
    for name in ("success_vs_flops", "success_vs_latency"):
        assert Image.open(tmp_path / f"{name}.png").size == (900, 600)
    # a compact cell pairs with the compact `none`
    compact_none = _record("none_compact", "none", [False] * 10, compact=True)
    rows = result_rows([none, compact_none, _record("f_c", "fastv", [True] * 10, compact=True)])
    assert rows[2]["vs_none_cell"] == "none_compact" and rows[2]["vs_none_c"] == 10
    assert "| 0 / 10, 0.00195 |" in markdown_table(rows)


def test_replayed_latency_replaces_the_episodes_own_where_measured(tmp_path):
    none, fastv = _record("none", "none", [True] * 4), _record("fastv", "fastv", [True] * 4)
    assert "measured while they ran" in markdown_table(write_results([none, fastv], tmp_path, plot=False))
    (tmp_path / LATENCY_FILE).write_text(json.dumps({"source": REPLAY_LATENCY, "cells": [
        {"cell": "none", "latency_ms_p50": 40.0, "latency_ms_p95": 44.0, "time_ratio": 1.0, "total_flop_ratio": 1.0}]}))  # fmt: skip
    rows = write_results([none, fastv], tmp_path, plot=False)
    assert (rows[0]["latency_ms_p50"], rows[0]["episode_latency_ms_p50"], rows[0]["latency_source"]) == (
        40.0, 10.0, REPLAY_LATENCY)  # fmt: skip
    assert (rows[1]["latency_ms_p50"], rows[1]["latency_source"]) == (10.0, "episodes")
    table = (tmp_path / "results.md").read_text()
    assert (
        "| 40.0 / 44.0 | 1.00 | 1.00 |" in table
        and "cells without a replay figure: their episodes' calls" in table
    )
    assert "| 10.0 / 12.0 | - | - |" in table  # fastv: no replay, so no replayed ratios


def test_manifest_cells_rebuild_the_settings_each_cell_ran_with(tiny_base_checkpoint, tmp_path):
    args = SweepArgs(policy_path=str(tiny_base_checkpoint), strategies=["fastv", "dtp"], keep_ratios=[0.25],
                     dtp_taus=[0.8], settings={"fastv": {"encoder": "carry_over"}, "dtp": {"layers": [1, 2]}})  # fmt: skip
    cells = make_grid(args)
    write_manifest(tmp_path, manifest(args, cells, EVAL))
    rebuilt = manifest_cells(tmp_path)
    assert list(rebuilt) == [c.name for c in cells]
    assert all(rebuilt[c.name].pruning == c.pruning for c in cells)
    assert (
        rebuilt["dtp_tau0.8"].pruning.layers == [1, 2]
        and rebuilt[cells[0].name].pruning.encoder == "carry_over"
    )


def _episodes(out):
    cells = sorted(p.stem for p in (out / "cells").glob("*.json"))
    return {c: [(e["task"], e["seed"], e["success"], e["sum_reward"])
                for e in json.loads((out / "cells" / f"{c}.json").read_text())["episodes"]] for c in cells}  # fmt: skip


@pytest.mark.sim
def _assert_same_episodes(got: dict, expected: dict) -> None:
    """Same (task, seed, success) per cell; sum rewards equal up to float summation order (seen: 1 ulp)."""
    assert {c: [e[:3] for e in eps] for c, eps in got.items()} == {
        c: [e[:3] for e in eps] for c, eps in expected.items()
    }
    for cell, eps in expected.items():
        assert [e[3] for e in got[cell]] == pytest.approx([e[3] for e in eps], rel=1e-12)


def test_local_and_ray_sweeps_give_identical_episodes_and_resume(tiny_base_checkpoint, tmp_path, capsys):
    common = [f"--policy_path={tiny_base_checkpoint}", "--strategies=[fastv,none]", "--keep_ratios=[0.25]",
              "--shard_episodes=2", "--torch_threads=1", *EVAL]  # fmt: skip
    local, ray_out = tmp_path / "local", tmp_path / "ray"
    rows = main([*common, f"--out={local}"])
    assert "[2/2] none: success" in capsys.readouterr().out
    assert [r["cell"] for r in rows] == ["fastv_keep_ratio0.25", "none"] and rows[0]["vs_none_pairs"] == 4
    episodes = _episodes(local)
    assert [e[1] for e in episodes["none"]] == [100, 101, 102, 103]
    assert sorted(p.name for p in (local / "shards" / "none").iterdir()) == [
        "seeds100-101.json",
        "seeds102-103.json",
    ]

    main([*common, f"--out={ray_out}", "--backend=ray", "--ray.num_cpus=2", "--ray.num_cpus_per_task=1"])
    _assert_same_episodes(_episodes(ray_out), episodes)

    # resume: a lost shard (and its cell) is rerun, every other shard is kept
    kept = local / "shards" / "none" / "seeds100-101.json"
    before = kept.stat().st_mtime_ns
    (local / "shards" / "none" / "seeds102-103.json").unlink()
    (local / "cells" / "none.json").unlink()
    capsys.readouterr()
    main([*common, f"--out={local}"])
    out = capsys.readouterr().out
    assert "resuming" in out and "1/2 cells done, 1 shards to run" in out and "[2/2] none:" in out
    assert kept.stat().st_mtime_ns == before
    _assert_same_episodes(_episodes(local), episodes)
    with pytest.raises(ValueError, match=r"differing: eval_args"):
        main([*common[:-1], "--seed=7", f"--out={local}"])


def test_a_cell_run_before_new_default_options_still_resumes():
    """Options added to the strategy configs later (at their defaults) do not change a finished cell."""
    import draccus

    from lerobot_prune import make_pruning_config
    from lerobot_prune.tools.sweep_manifest import same_cell

    wanted = {"type": "fastv", **draccus.encode(make_pruning_config("fastv", keep_ratio=0.25))}
    found = {k: v for k, v in wanted.items() if not k.startswith("encoder")}
    assert same_cell(found, wanted)
    assert not same_cell(found, {**wanted, "encoder": "carry_over"})
    assert not same_cell(found, {**wanted, "keep_ratio": 0.5})
