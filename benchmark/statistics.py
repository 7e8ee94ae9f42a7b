"""Uncertainty and paired comparisons behind every table, with SciPy.

- ``bootstrap_interval``: 95 % confidence interval of a mean over samples (percentile bootstrap,
  ``scipy.stats.bootstrap``, seeded).
- ``top_methods``: within one domain and metric, the best method by its mean and every method not
  significantly worse than it on the same samples (one-sided Wilcoxon signed-rank test,
  ``scipy.stats.wilcoxon``, Holm-corrected over the column's comparisons).
"""
from __future__ import annotations

import zlib

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999
ALPHA = 0.05


def cell_seed(seed: int, *names: str) -> int:
    """A seed for one table cell: a function of the run's seed and the cell's names only, so that a
    cell's interval does not depend on the other rows."""
    return int(np.random.SeedSequence([seed, zlib.crc32("/".join(names).encode())]).generate_state(1)[0])


def bootstrap_interval(values: np.ndarray, seed: int) -> tuple[float, float]:
    """The 95 % percentile-bootstrap confidence interval of the mean of ``values`` (NaN ignored).

    Args:
        values: (n,) per-sample values of one metric.
        seed: seed of the resampling (``numpy.random.default_rng``).
    Returns:
        (low, high); (v, v) when all values equal v (a constant column has zero width);
        (NaN, NaN) without a finite value.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, confidence_level=CONFIDENCE, n_resamples=RESAMPLES,
                             method="percentile", rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), in the order given; each in [0, 1]."""
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(len(p_values))
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted.tolist()


def worse_p_value(differences: np.ndarray, higher_is_better: bool) -> float:
    """One-sided p-value of "the method is worse than the best" from paired differences method − best.

    Wilcoxon signed-rank with Pratt's treatment of zero differences; 1 when every difference is 0
    (identical columns, e.g. AI = 0 for both).
    """
    if not np.any(differences != 0):
        return 1.0
    alternative = "less" if higher_is_better else "greater"
    return float(stats.wilcoxon(differences, zero_method="pratt", alternative=alternative).pvalue)


def top_methods(values: pd.DataFrame, higher_is_better: bool, candidates: list[str]) -> dict[str, bool]:
    """Which methods are the best of a column or not significantly worse than it.

    Args:
        values: one metric, index sample_id, one column per method (NaN: no value for that sample).
        higher_is_better: the metric's direction.
        candidates: the methods that may be the best (all but the control rows); every column is
            compared with it.
    Returns:
        {method: True if it is the best (highest or lowest mean among ``candidates``) or its
        Holm-adjusted p-value (one-sided Wilcoxon on the samples both have) is ≥ 0.05}; methods
        without values are left out. Empty when no candidate has a value.
    """
    means = values.mean()
    ranked = means[[m for m in candidates if m in means and pd.notna(means[m])]]
    if ranked.empty:
        return {}
    best = ranked.idxmax() if higher_is_better else ranked.idxmin()
    others = [m for m in values.columns if m != best and pd.notna(means[m])]
    p_values = []
    for method in others:
        paired = values[[method, best]].dropna()
        p_values.append(worse_p_value((paired[method] - paired[best]).to_numpy(), higher_is_better)
                        if len(paired) else 0.0)
    adjusted = holm(p_values) if p_values else []
    return {best: True, **{m: p >= ALPHA for m, p in zip(others, adjusted)}}
