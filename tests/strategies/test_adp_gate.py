"""ADP's action-aware gate and motion measures on hand-made sequences (no model)."""

from __future__ import annotations

import math

import pytest
import torch

from lerobot_prune.strategies.adp_gate import (
    ActionAwareGate,
    fk_path_length,
    fk_positions,
    net_displacement,
    path_length,
)


def window_states(gate: ActionAwareGate, deltas: list[float]) -> list[int]:
    """States of windows 1..len(deltas)+1: window 1 runs gate.state, each update gives the next."""
    return [gate.state] + [gate.update(d) for d in deltas]


def test_monotone_increase_gives_one_after_cold_start_and_limit_forces_zero():
    gate = ActionAwareGate()
    assert gate.cold_start_windows == 3
    assert window_states(gate, [1, 2, 3, 4, 5, 6, 7, 8]) == [0, 0, 0, 1, 1, 1, 0, 1, 1]
    assert gate.streak == 2
    assert gate.last_delta == 8.0
    assert gate.history == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_limit_disabled_keeps_ones():
    gate = ActionAwareGate(limit_consecutive=False)
    assert window_states(gate, [1, 2, 3, 4, 5, 6, 7, 8]) == [0, 0, 0, 1, 1, 1, 1, 1, 1]
    assert gate.streak == 6


def test_max_consecutive_sets_the_run_length():
    gate = ActionAwareGate(max_consecutive=1)
    assert window_states(gate, [1, 2, 3, 4, 5, 6]) == [0, 0, 0, 1, 0, 1, 0]


def test_strict_decrease_gives_zero():
    states = window_states(ActionAwareGate(), [5, 4, 3, 2, 1, 0.5])
    assert states == [0] * 7


def test_initial_state_one_holds_through_cold_start():
    gate = ActionAwareGate(initial_state=1)
    assert window_states(gate, [5, 4, 3]) == [1, 1, 1, 0]


def test_initial_state_one_counts_window_one_in_the_consecutive_limit():
    """Window 1 runs pruned, so with max_consecutive=3 windows 1-3 are the run and window 4 is forced to
    full vision (the ADP authors' controller starts its pruned-window counter at 1 in that case)."""
    gate = ActionAwareGate(initial_state=1)
    assert gate.streak == 1
    assert window_states(gate, [5, 6, 7, 8]) == [1, 1, 1, 0, 1]
    gate.reset()
    assert (gate.state, gate.streak) == (1, 1)
    assert window_states(ActionAwareGate(initial_state=1, max_consecutive=1), [5, 6, 7, 8]) == [1, 0, 1, 0, 1]
    assert window_states(ActionAwareGate(initial_state=1, limit_consecutive=False), [5, 6, 7, 8]) == [1] * 5


def test_middle_value_gives_one_or_keeps_previous_state():
    assert window_states(ActionAwareGate(), [1, 3, 2]) == [0, 0, 0, 1]
    assert window_states(ActionAwareGate(adjacent_last_state=True), [1, 3, 2]) == [0, 0, 0, 0]
    assert window_states(ActionAwareGate(adjacent_last_state=True), [1, 2, 3, 2.5]) == [0, 0, 0, 1, 1]
    assert window_states(ActionAwareGate(adjacent_last_state=True), [3, 2, 1, 1.5]) == [0, 0, 0, 0, 0]


def test_ties_with_either_extremum_give_one():
    assert window_states(ActionAwareGate(), [1, 3, 3])[-1] == 1
    assert window_states(ActionAwareGate(), [1, 3, 1])[-1] == 1
    assert window_states(ActionAwareGate(), [2, 2, 2])[-1] == 1
    assert window_states(ActionAwareGate(), [1, 3, 0.999])[-1] == 0


def test_extrema_window_compares_with_more_previous_motions():
    gate = ActionAwareGate(extrema_window=5)
    assert gate.cold_start_windows == 5
    # δ_5 = 2 lies between min(1, 4, 3, 5) and max: 1; δ_6 = 0.5 < min(4, 3, 5, 2): 0.
    assert window_states(gate, [1, 4, 3, 5, 2, 0.5]) == [0, 0, 0, 0, 0, 1, 0]
    assert ActionAwareGate(extrema_window=1).cold_start_windows == 3
    assert ActionAwareGate(decision="mean").cold_start_windows == 0


def test_mean_cumulative_and_ema_differ():
    deltas = [8, 0, 4, 2, 3]
    # cumulative means: 8, 4, 4, 3.5, 3.4 -> 8≥8, 0<4, 4≥4, 2<3.5, 3<3.4
    cumulative = window_states(ActionAwareGate(decision="mean"), deltas)
    assert cumulative == [0, 1, 0, 1, 0, 0]
    # ema: 8, 4, 4, 3, 3 -> 8≥8, 0<4, 4≥4, 2<3, 3≥3
    ema = window_states(ActionAwareGate(decision="mean", mean_variant="ema0.5"), deltas)
    assert ema == [0, 1, 0, 1, 0, 1]


def test_mean_respects_the_consecutive_limit():
    gate = ActionAwareGate(decision="mean", max_consecutive=2)
    assert window_states(gate, [1, 2, 3, 4, 5]) == [0, 1, 1, 0, 1, 1]


def test_reset_restores_everything():
    deltas = [1, 2, 3, 4, 5, 6, 7, 8]
    for kwargs in ({}, {"decision": "mean", "mean_variant": "ema0.5"}):
        gate = ActionAwareGate(**kwargs)
        first = window_states(gate, deltas)
        gate.reset()
        assert (gate.state, gate.history, gate.streak, gate.last_delta) == (0, [], 0, None)
        assert window_states(gate, deltas) == first


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"decision": "median"}, "'median'"),
        ({"mean_variant": "ema0.9"}, "'ema0.9'"),
        ({"extrema_window": 0}, "extrema_window=0"),
        ({"max_consecutive": 0}, "max_consecutive=0"),
        ({"max_consecutive": 2.5}, "max_consecutive=2.5"),
        ({"initial_state": 2}, "initial_state=2"),
    ],
)
def test_bad_constructor_values_raise(kwargs, bad):
    with pytest.raises(ValueError, match=bad):
        ActionAwareGate(**kwargs)


def test_non_finite_delta_raises():
    with pytest.raises(ValueError, match="nan"):
        ActionAwareGate().update(float("nan"))


def test_net_displacement_and_path_length():
    positions = torch.tensor([[0.0, 0.0], [3.0, 4.0], [3.0, 4.1], [0.0, 0.0]])
    assert net_displacement(positions) == 0.0
    assert path_length(positions) == pytest.approx(5.0 + 0.1 + math.hypot(3.0, 4.1))
    assert path_length(positions, min_step=0.5) == pytest.approx(5.0 + math.hypot(3.0, 4.1))
    assert net_displacement(positions[:2]) == pytest.approx(5.0)
    for short in (positions[:1], positions[:0]):
        assert net_displacement(short) == 0.0
        assert path_length(short) == 0.0
    with pytest.raises(ValueError, match="shape"):
        path_length(torch.zeros(3))


def test_fk_pure_translations_are_the_cumulative_sum():
    deltas = torch.zeros(4, 6, dtype=torch.float64)
    deltas[:, :3] = torch.tensor([[1.0, 0.0, 0.5], [0.0, -2.0, 0.0], [0.25, 0.25, 0.25], [-1.0, 3.0, 0.0]])
    expected = torch.cat([torch.zeros(1, 3, dtype=torch.float64), deltas[:, :3].cumsum(0)])
    assert torch.allclose(fk_positions(deltas), expected, atol=1e-12)
    assert fk_positions(torch.zeros(0, 6)).tolist() == [[0.0, 0.0, 0.0]]


def test_fk_translation_follows_the_rotated_body_frame():
    deltas = torch.tensor(
        [[0.0, 0.0, 0.0, 0.0, 0.0, math.pi / 2], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64
    )
    expected = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(fk_positions(deltas), expected, atol=1e-9, rtol=0.0)
    # R_x(π/2) R_y(π/2) maps body +x to world +y.
    rolled = torch.tensor(
        [[0.0, 0.0, 0.0, math.pi / 2, math.pi / 2, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]], dtype=torch.float64
    )
    assert torch.allclose(
        fk_positions(rolled)[-1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-9
    )
    with pytest.raises(ValueError, match="shape"):
        fk_positions(torch.zeros(2, 3))


def test_fk_path_length_of_a_square():
    side_then_turn = [1.0, 0.0, 0.0, 0.0, 0.0, math.pi / 2]
    deltas = torch.tensor([side_then_turn] * 4, dtype=torch.float64)
    expected = torch.tensor([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.float64)
    assert torch.allclose(fk_positions(deltas), expected, atol=1e-9, rtol=0.0)
    assert fk_path_length(deltas) == pytest.approx(4.0)
    assert net_displacement(fk_positions(deltas)) == pytest.approx(0.0, abs=1e-9)
