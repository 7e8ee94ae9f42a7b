"""Which metrics can be trusted: on the controlled dataset, where the bins the classifier uses are known
(``benchmark.reliance``), how well each faithfulness metric ranks the methods as the ground truth does
(docs/ground-truth.md).

Per domain, over the methods of the run (controls included: a metric should rank a random map below a
faithful one), Kendall's τ-b (``scipy.stats.kendalltau``) between the methods' mean score on a metric and
their mean ground-truth score (Loc-AUC and Cue-prec against the cue). Each metric is oriented so that
τ = +1 means "ranks the methods as the truth does": a metric where lower is better (AD, Del-AUC) enters
negated. The 95 % interval is a percentile bootstrap over samples: the same resampled samples for every
method (paired), the method means and τ recomputed on each of ``RESAMPLES`` resamples.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.figures import plot_agreement
from foundation.frontend import DOMAINS
from metrics import registered_metrics

FAITHFULNESS_METRICS = ("AI", "AD", "AG", "FF", "Fid-In", "Ins-AUC", "Del-AUC")
"""The metrics judged: the paper's faithfulness metrics and this benchmark's insertion and deletion areas."""
TRUTH_SCORES = ("Loc-AUC", "Cue-prec")
"""The ground-truth scores they are judged against."""
RESAMPLES = 999
CONFIDENCE = 0.95


def kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's τ-b of two (M,) score vectors; NaN when either is constant or M < 2."""
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(stats.kendalltau(a, b).statistic)


def means(scores: np.ndarray, draws: np.ndarray | None = None) -> np.ndarray:
    """Method means over samples, NaN ignored: (M,) of (M, n) scores, or (M, R) over each row of (R, n) ``draws``."""
    with warnings.catch_warnings():  # a method without a value on the drawn samples has a NaN mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(scores if draws is None else scores[:, draws], axis=-1)


def finite_tau(a: np.ndarray, b: np.ndarray) -> float:
    """``kendall_tau`` of two (M,) mean vectors over the methods with a finite mean in both."""
    keep = np.isfinite(a) & np.isfinite(b)
    return kendall_tau(a[keep], b[keep])


def tau_with_interval(a: np.ndarray, b: np.ndarray, draws: np.ndarray) -> tuple[float, float, float]:
    """τ-b of the method means of two (M, n) score matrices on the same samples, and its percentile interval
    over ``draws`` ((R, n) sample indices); NaN where τ is undefined in every resample."""
    tau = finite_tau(means(a), means(b))
    resampled_a, resampled_b = means(a, draws), means(b, draws)
    taus = np.array([finite_tau(resampled_a[:, r], resampled_b[:, r]) for r in range(len(draws))])
    taus = taus[~np.isnan(taus)]
    if not taus.size:
        return tau, float("nan"), float("nan")
    low, high = np.quantile(taus, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2])
    return tau, float(low), float(high)


def agreement(per_sample: pd.DataFrame, seed: int, resamples: int = RESAMPLES) -> pd.DataFrame:
    """Kendall τ with its bootstrap interval for every domain × metric × truth score (module doc).

    Args:
        per_sample: per_sample.csv rows (columns sample_id, domain, method and the metric columns).
        seed: seed of the bootstrap (``numpy.random.default_rng``).
    Returns:
        DataFrame with columns domain, metric, truth, tau, ci_low, ci_high, methods (M ranked), n (samples);
        a metric or truth score absent from ``per_sample`` is left out.
    Raises:
        ValueError: ``resamples`` < 1.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    rng = np.random.default_rng(seed)
    rows = []
    for domain, rows_of_domain in per_sample.groupby("domain", sort=False):
        samples = np.sort(rows_of_domain["sample_id"].unique())
        draws = rng.integers(len(samples), size=(resamples, len(samples)))
        matrices = {}
        for column in (*FAITHFULNESS_METRICS, *TRUTH_SCORES):
            if column in rows_of_domain and rows_of_domain[column].notna().any():
                values = rows_of_domain.pivot(index="method", columns="sample_id", values=column)[samples]
                sign = -1.0 if registered_metrics()[column].higher_is_better is False else 1.0
                matrices[column] = sign * values.to_numpy(float)
        for truth in (t for t in TRUTH_SCORES if t in matrices):
            for metric in (m for m in FAITHFULNESS_METRICS if m in matrices):
                tau, low, high = tau_with_interval(matrices[metric], matrices[truth], draws)
                rows.append({"domain": domain, "metric": metric, "truth": truth, "tau": tau, "ci_low": low,
                             "ci_high": high, "methods": len(matrices[metric]), "n": len(samples)})
    return pd.DataFrame(rows, columns=["domain", "metric", "truth", "tau", "ci_low", "ci_high", "methods", "n"])


def verdict(row: dict) -> str:
    """"agrees" (interval above 0), "disagrees" (below 0) or "undecided" (it holds 0, or no interval)."""
    if row["ci_low"] > 0:
        return "agrees"
    if row["ci_high"] < 0:
        return "disagrees"
    return "undecided"


def write_agreement(out_dir: Path, per_sample: pd.DataFrame, title: str, seed: int) -> str:
    """Write ``agreement.csv``, ``agreement.md`` and ``agreement.png`` to ``out_dir``; return the Markdown."""
    table = agreement(per_sample, seed)
    table["verdict"] = [verdict(r) for r in table.to_dict("records")]
    table.to_csv(out_dir / "agreement.csv", index=False)
    cells = table.assign(domain=[DOMAINS[d].label for d in table["domain"]], truth="τ vs " + table["truth"],
                         cell=[f"{r['tau']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] {r['verdict']}"
                               for r in table.to_dict("records")])
    rows = list(dict.fromkeys(zip(cells["domain"], cells["metric"])))  # the table's order, not pivot's sorted one
    shown = (cells.pivot(index=["domain", "metric"], columns="truth", values="cell")
             .reindex(index=rows, columns=[f"τ vs {truth}" for truth in TRUTH_SCORES]).fillna("n/a").reset_index())
    counts = ", ".join(f"{count} {DOMAINS[domain].label}" for domain, count in
                       table.groupby("domain", sort=False)["methods"].max().items())
    notes = [f"Kendall τ-b over the methods of each domain ({counts}; controls included) between a metric's mean "
             "and the mean ground-truth score; AD and Del-AUC negated (lower is better), so +1 = the truth's ranking",
             f"[low, high]: {100 * CONFIDENCE:.0f} % percentile bootstrap over samples ({RESAMPLES} paired resamples, "
             f"seed {seed}); agrees / disagrees: the interval lies above / below 0",
             "ground truth: Loc-AUC (AUROC of the map against the cue's bins) and Cue-prec (precision at the cue's "
             "size), the cue's reliance verified by intervention (see the reliance notes of table.md)"]
    text = "\n".join([f"## {title} — which metrics agree with the ground truth", "",
                      shown.to_markdown(index=False, disable_numparse=True), "", *[f"- {n}" for n in notes], ""])
    (out_dir / "agreement.md").write_text(text)
    plot_agreement(table, title, out_dir / "agreement.png")
    return text
