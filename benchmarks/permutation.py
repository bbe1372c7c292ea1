"""Permutation test benchmark: segsql.measure.stats.permutation_p_value (vectorised draws of
distinct picks) against the earlier way of drawing, one Generator.choice(replace=False) call per
relabelling, on the same values in the same run. 9,999 relabellings each.

    python benchmarks/permutation.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from segsql.measure import stats

CASES = [(600, 5), (600, 30), (5_000, 30), (60, 30), (100_000, 200), (100_000, 3_000)]  # (pool, small group)


def per_row(own: stats.Values, other: stats.Values) -> float:
    """The earlier draws: one choice() per relabelling (the same statistic and p-value rule)."""
    num, den = np.concatenate([own.num, other.num]), np.concatenate([own.den, other.den])
    small = min(own.num.size, other.num.size)
    rng = np.random.default_rng(stats.SEED)
    per_chunk = max(1, stats.CHUNK_ELEMENTS // small)  # bounded memory, as the earlier code had
    sums = []
    for start in range(0, stats.PERMUTATIONS, per_chunk):
        picks = np.array([rng.choice(num.size, size=small, replace=False)
                          for _ in range(min(per_chunk, stats.PERMUTATIONS - start))])
        sums.append((num[picks].sum(axis=1), den[picks].sum(axis=1)))
    drawn_num = np.concatenate([chunk[0] for chunk in sums])
    drawn_den = np.concatenate([chunk[1] for chunk in sums])
    drawn = drawn_num / drawn_den - (num.sum() - drawn_num) / (den.sum() - drawn_den)
    observed = own.num.sum() / own.den.sum() - other.num.sum() / other.den.sum()
    return float((1 + np.sum(np.abs(drawn) >= abs(observed))) / (1 + stats.PERMUTATIONS))


def best(function, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    print(f"machine: {platform.machine()} {platform.processor() or ''}, python {platform.python_version()}, "
          f"numpy {np.__version__}; best of {repeat}")
    rng = np.random.default_rng(1)
    for pool, small in CASES:
        values = rng.lognormal(6, 1, pool)
        own = stats.Values.of(values[:small], np.ones(small))
        other = stats.Values.of(values[small:], np.ones(pool - small))
        new = best(lambda: stats.permutation_p_value(own, other), repeat)  # noqa: B023
        old = best(lambda: per_row(own, other), repeat)  # noqa: B023
        print(f"  pool {pool:>7,}, group {small:>5,}: vectorised {new * 1000:8.1f} ms, one choice() per row "
              f"{old * 1000:8.1f} ms  ({old / new:5.1f}x)")


if __name__ == "__main__":
    main()
