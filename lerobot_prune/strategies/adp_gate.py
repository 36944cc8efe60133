"""ADP's action-aware gate (arXiv 2509.22093; chen7086/VLA-ADP `_OnlineStrategyController`), no model.

Each action window (one executed chunk) yields a motion magnitude δ_i of the end effector. The gate turns the
sequence δ_1, δ_2, ... into a binary state s_{i+1} ∈ {0, 1} for the next window: 1 when the robot is moving at
least as much as in the recent past, 0 otherwise. Which state prunes is the caller's choice.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

GATE_DECISIONS = ("adjacent", "mean")
MEAN_VARIANTS = ("cumulative", "ema0.5")
GATE_STATES = (0, 1)
MIN_EXTREMA_WINDOW = 3


def _check_positions(positions: Tensor) -> None:
    if positions.dim() != 2:
        raise ValueError(f"positions must have shape [n, P]; got shape {tuple(positions.shape)}.")


def net_displacement(positions: Tensor) -> float:
    """‖p_last − p_first‖₂ of positions [n, P]; 0.0 when n < 2."""
    _check_positions(positions)
    if positions.shape[0] < 2:
        return 0.0
    return float(torch.linalg.vector_norm(positions[-1].double() - positions[0].double()))


def path_length(positions: Tensor, min_step: float = 0.0) -> float:
    """Σ_k ‖p_{k+1} − p_k‖₂ over positions [n, P], steps shorter than `min_step` counting 0; 0.0 when n < 2."""
    _check_positions(positions)
    if positions.shape[0] < 2:
        return 0.0
    steps = torch.linalg.vector_norm(positions.double().diff(dim=0), dim=-1)
    return float(steps[steps >= min_step].sum())


def _rot_x(a: float) -> Tensor:
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]], dtype=torch.float64)


def _rot_y(a: float) -> Tensor:
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)


def _rot_z(a: float) -> Tensor:
    c, s = math.cos(a), math.sin(a)
    return torch.tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)


def _delta_transform(delta: Tensor) -> Tensor:
    """delta [6] = (dx, dy, dz, dφ, dθ, dψ) -> homogeneous [4, 4] with rotation R_x(dφ) R_y(dθ) R_z(dψ)."""
    dx, dy, dz, roll, pitch, yaw = (float(v) for v in delta)
    transform = torch.eye(4, dtype=torch.float64)
    transform[:3, :3] = _rot_x(roll) @ _rot_y(pitch) @ _rot_z(yaw)
    transform[:3, 3] = torch.tensor([dx, dy, dz], dtype=torch.float64)
    return transform


def fk_positions(deltas: Tensor) -> Tensor:
    """Body-frame composition T_{k+1} = T_k · ΔT_k from T_0 = I of delta-EEF actions.

    deltas [n, 6] = (dx, dy, dz, dφ, dθ, dψ) per step -> positions [n + 1, 3] (float64), translations of
    T_0..T_n.
    """
    if deltas.dim() != 2 or deltas.shape[1] != 6:
        raise ValueError(f"deltas must have shape [n, 6]; got shape {tuple(deltas.shape)}.")
    pose = torch.eye(4, dtype=torch.float64)
    positions = [pose[:3, 3].clone()]
    for delta in deltas.detach().cpu():
        pose = pose @ _delta_transform(delta)
        positions.append(pose[:3, 3].clone())
    return torch.stack(positions)


def fk_path_length(deltas: Tensor) -> float:
    """Path length of the end effector driven by delta-EEF actions deltas [n, 6]."""
    return path_length(fk_positions(deltas))


def _check_choice(name: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r} is not valid; choose one of {choices}.")


def _check_at_least(name: str, value: int, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name}={value!r} is not valid; it must be an integer >= {minimum}.")


class ActionAwareGate:
    """Gate state machine of one episode (one batch element).

    Window 1 runs `initial_state`; `update(δ_i)` at the close of window i returns the state of window i + 1.

    Args:
        decision: "adjacent" compares δ_i with the extrema of the L_w − 1 previous motions
            (L_w = max(3, extrema_window)): 1 if δ_i ≥ max, 0 if δ_i < min, else the previous state when
            `adjacent_last_state` and 1 otherwise. "mean" gives 1 iff δ_i ≥ the running mean.
        extrema_window: L_w before the floor of 3.
        adjacent_last_state: keep the previous state, instead of 1, when δ_i lies between the extrema.
        mean_variant: "cumulative" = mean(δ_1..δ_i); "ema0.5" = m ← δ_1, then m ← 0.5·m + 0.5·δ_i.
        limit_consecutive: after `max_consecutive` windows of state 1 in a row, force the next 1 to 0.
            Window 1 counts: an episode that starts pruned (`initial_state=1`) starts its streak at 1, as
            the ADP authors' controller does (their first window is already one pruned window).
        max_consecutive: the longest run of 1s allowed when `limit_consecutive`.
        initial_state: state of window 1 and of the adjacent cold start.
    """

    def __init__(
        self,
        *,
        decision: str = "adjacent",
        extrema_window: int = 3,
        adjacent_last_state: bool = False,
        mean_variant: str = "cumulative",
        limit_consecutive: bool = True,
        max_consecutive: int = 3,
        initial_state: int = 0,
    ) -> None:
        _check_choice("decision", decision, GATE_DECISIONS)
        _check_choice("mean_variant", mean_variant, MEAN_VARIANTS)
        _check_at_least("extrema_window", extrema_window, 1)
        _check_at_least("max_consecutive", max_consecutive, 1)
        if isinstance(initial_state, bool):
            raise ValueError(f"initial_state={initial_state!r} is not valid; choose one of {GATE_STATES}.")
        _check_choice("initial_state", initial_state, GATE_STATES)
        self.decision = decision
        self.extrema_window = extrema_window
        self.adjacent_last_state = adjacent_last_state
        self.mean_variant = mean_variant
        self.limit_consecutive = limit_consecutive
        self.max_consecutive = max_consecutive
        self.initial_state = initial_state
        self.reset()

    @property
    def window_length(self) -> int:
        """L_w = max(3, extrema_window): δ_i plus the L_w − 1 motions it is compared with."""
        return max(MIN_EXTREMA_WINDOW, self.extrema_window)

    @property
    def cold_start_windows(self) -> int:
        """Leading windows the adjacent rule holds at `initial_state` whatever the motion (windows 1..L_w).

        0 for "mean", whose rule has no cold start (window 1 still runs `initial_state`: no δ exists yet).
        """
        return self.window_length if self.decision == "adjacent" else 0

    def reset(self) -> None:
        """Forget the episode: state = initial_state, empty history, streak = initial_state (window 1 is
        already a pruned window when it runs state 1), no running mean."""
        self.state: int = self.initial_state
        self.history: list[float] = []
        self.streak: int = self.initial_state
        self.last_delta: float | None = None
        self._ema: float | None = None

    def update(self, delta: float) -> int:
        """Record δ_i of the window that just closed; return (and store) the state of the next window."""
        delta = float(delta)
        if not math.isfinite(delta):
            raise ValueError(f"delta={delta!r} is not valid; the motion of a window must be finite.")
        self.history.append(delta)
        self.last_delta = delta
        raw = self._adjacent(delta) if self.decision == "adjacent" else self._mean(delta)
        self.state = self._limit(raw)
        return self.state

    def _adjacent(self, delta: float) -> int:
        if len(self.history) < self.window_length:
            return self.initial_state
        previous = self.history[-self.window_length : -1]
        if delta >= max(previous):
            return 1
        if delta < min(previous):
            return 0
        return self.state if self.adjacent_last_state else 1

    def _mean(self, delta: float) -> int:
        if self.mean_variant == "cumulative":
            reference = sum(self.history) / len(self.history)
        else:
            self._ema = delta if self._ema is None else 0.5 * self._ema + 0.5 * delta
            reference = self._ema
        return int(delta >= reference)

    def _limit(self, state: int) -> int:
        if state == 0:
            self.streak = 0
            return 0
        if self.limit_consecutive and self.streak >= self.max_consecutive:
            self.streak = 0
            return 0
        self.streak += 1
        return 1
