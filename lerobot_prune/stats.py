"""Small, pure-Python statistics for success studies: Wilson intervals and the exact McNemar test.

Episodes are paired by (task, seed): every sweep cell runs the same seeds, so a strategy and the
unpruned reference meet the same initial states and differ only where the policy does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

Z95 = 1.959963984540054  # two-sided 95 % normal quantile


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion, as fractions in [0, 1] (e.g. 8/10 -> (0.490, 0.943)).

    With `n == 0` the interval is the whole of [0, 1].
    """
    if not 0 <= successes <= n:
        raise ValueError(f"successes={successes} must lie in [0, n={n}].")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value (a sign test on the b + c discordant pairs, p = 1/2).

    Equals `scipy.stats.binomtest(b, b + c, 0.5).pvalue`; 1.0 when there are no discordant pairs.
    """
    if b < 0 or c < 0:
        raise ValueError(f"Discordant counts must be >= 0, got b={b}, c={c}.")
    n = b + c
    if n == 0:
        return 1.0
    low = min(b, c)
    tail = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_counts[K](reference: Mapping[K, bool], other: Mapping[K, bool]) -> dict[str, int]:
    """Concordance of two success maps over their shared keys (e.g. (task, seed)).

    Returns:
        {"pairs": shared keys, "b": reference succeeded and other failed, "c": reference failed and other
        succeeded}.
    """
    shared = reference.keys() & other.keys()
    b = sum(1 for k in shared if reference[k] and not other[k])
    c = sum(1 for k in shared if other[k] and not reference[k])
    return {"pairs": len(shared), "b": b, "c": c}
