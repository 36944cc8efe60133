"""Wilson intervals and the exact McNemar test of `lerobot_prune.stats` against known values and scipy."""

import pytest
from scipy.stats import binomtest

from lerobot_prune.stats import mcnemar_exact, paired_counts, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [(8, 10, (0.4902, 0.9433)), (0, 10, (0.0, 0.2775)), (10, 10, (0.7225, 1.0)), (50, 100, (0.4038, 0.5962))],
)
def test_wilson_matches_known_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert (low, high) == pytest.approx(expected, abs=5e-4)


def test_wilson_matches_scipy_and_handles_empty():
    for k, n in [(3, 7), (1, 50), (37, 40)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="must lie in"):
        wilson_interval(3, 2)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (0, 5), (3, 9), (10, 10), (12, 2), (40, 61)])
def test_mcnemar_equals_binomtest(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-12)


def test_paired_counts_use_shared_keys_only():
    ref = {("t", 0): True, ("t", 1): True, ("t", 2): False, ("t", 3): False, ("u", 0): True}
    other = {("t", 0): True, ("t", 1): False, ("t", 2): True, ("t", 3): True, ("t", 9): True}
    assert paired_counts(ref, other) == {"pairs": 4, "b": 1, "c": 2}
