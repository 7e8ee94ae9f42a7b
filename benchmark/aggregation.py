"""One aggregated ranking of the methods, as LATEC does it (Klein et al., NeurIPS 2024 Datasets and Benchmarks,
§2 "ranking"; docs/ranking.md).

Per domain, each method is ranked on every metric with a direction (``metrics.base.Metric.higher_is_better``; MM
has none) by its median over the samples (NaN ignored), 1 = best, ties sharing the mean of their ranks. The ranks
are averaged within each category of ``CATEGORIES`` (its spread: the SD over the category's metrics), the
categories' means are averaged into ``overall``, and ``trusted`` is the same over only the metrics a trust table
accepts (``trust.csv``: columns domain, metric, accepted). Controls are ranked beside the methods. Uncertainty: a
paired bootstrap over samples (``RESAMPLES`` resamples drawn once from the run's seed, the same for every method,
metric and domain) recomputes everything; each category's mean rank gets its percentile interval and each method
the frequency of holding each overall rank. Agreement of the metrics (LATEC's test against random ranks): Levene's
test (median-centred) of a method's ranks across a category's metrics against uniformly random ranks 1..M.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from benchmark.arguments import UsageError
from benchmark.rankings import is_control
from foundation.frontend import DOMAINS
from metrics import registered_metrics

CATEGORIES = {"faithfulness": ("AI", "AD", "AG", "FF", "Fid-In", "Ins-AUC", "Del-AUC"),
              "complexity": ("SPS", "COMP"),
              "localisation": ("Loc-AUC", "Loc-mass", "Cue-prec", "Distractor-mass"),
              "robustness": ("Max-Sens", "Avg-Sens", "RIS", "ROS")}
"""The categories and their metrics; a metric is ranked where the run has a value of it and it has a direction."""
OVERALL, TRUSTED = "overall", "trusted"
COLUMNS = ("domain", "method", "control", "category", "mean_rank", "rank_sd", "n_metrics", "rank_low", "rank_high",
           "rank1_frequency")
"""The columns of ranking.csv; ``rank1_frequency`` only in ``overall`` rows."""
RANKING_FILES = ("ranking.csv", "ranking.md")
TRUST_FILE = "trust.csv"
RESAMPLES = 999
CONFIDENCE = 0.95
ALPHA = 0.1
"""Level of the agreement test, LATEC's."""
REFERENCE_SIZE = 100_000
"""Size of the random-ranks sample of the agreement test (each rank 1..M equally often)."""
CHUNK = 100


@dataclass(frozen=True)
class DomainRanks:
    """Ranks of ``methods`` (M) on ``metrics`` (K) in one domain: ``ranks`` (1 + B, M, K), row 0 on the evaluated
    samples, rows 1.. on the B bootstrap resamples; NaN where a method has no value of a metric."""

    domain: str
    methods: list[str]
    metrics: list[str]
    ranks: np.ndarray


def ranked_metrics(per_sample: pd.DataFrame) -> list[str]:
    """The metrics of ``CATEGORIES`` that ``per_sample`` holds with a value and the registry gives a direction."""
    registry = registered_metrics()
    return [m for names in CATEGORIES.values() for m in names if m in per_sample and per_sample[m].notna().any()
            and m in registry and registry[m].higher_is_better is not None]


def sample_draws(samples: int, rng: np.random.Generator, resamples: int = RESAMPLES) -> np.ndarray:
    """(1 + resamples, samples) sample indices: row 0 every sample once, then the resamples drawn with
    replacement by ``rng`` (``numpy.random.default_rng(seed)`` of the run's seed)."""
    drawn = rng.integers(samples, size=(resamples, samples))
    return np.vstack([np.arange(samples)[None], drawn])


def medians(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """(R, M) medians, NaN ignored, of (M, n) values over each row of (R, n) ``draws``; NaN without a value."""
    result = np.empty((len(draws), len(values)))
    for start in range(0, len(draws), CHUNK):  # (M, chunk, n) at a time
        drawn = np.sort(values[:, draws[start:start + CHUNK]], axis=-1)  # NaN sort last
        count = (~np.isnan(drawn)).sum(-1)
        low = np.take_along_axis(drawn, np.maximum((count - 1) // 2, 0)[..., None], -1)[..., 0]
        high = np.take_along_axis(drawn, (count // 2)[..., None], -1)[..., 0]
        result[start:start + CHUNK] = (0.5 * (low + high)).T
    return result


def domain_ranks(per_sample: pd.DataFrame, draws: np.ndarray, metrics: list[str],
                 methods: dict[str, list[str]] | None = None) -> list[DomainRanks]:
    """Each domain's ``DomainRanks`` of one run.

    Args:
        per_sample: per_sample.csv rows (sample_id, domain, method, the metric columns).
        draws: ``sample_draws`` over the run's sorted sample ids.
        metrics: the metrics to rank (``ranked_metrics``).
        methods: domain → the methods to rank (default: every method of the domain, in the run's order).
    """
    samples = np.sort(per_sample["sample_id"].unique())
    result = []
    for domain, rows in per_sample.groupby("domain", sort=False):
        ranked = methods[domain] if methods else list(dict.fromkeys(rows["method"]))
        ranks = np.full((len(draws), len(ranked), len(metrics)), np.nan)
        for k, metric in enumerate(metrics):
            if not rows[metric].notna().any():
                continue
            values = rows.pivot(index="method", columns="sample_id", values=metric).reindex(
                index=ranked, columns=samples).to_numpy(float)
            sign = -1.0 if registered_metrics()[metric].higher_is_better else 1.0
            ranks[:, :, k] = stats.rankdata(sign * medians(values, draws), axis=1, nan_policy="omit")
        result.append(DomainRanks(str(domain), ranked, list(metrics), ranks))
    return result


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():  # a method without any rank in a group has a NaN mean
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _sd(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanstd(values, axis=axis)


def category_means(ranks: DomainRanks, accepted: set[str] | None = None) -> dict[str, tuple[np.ndarray, ...]]:
    """Category → ((1 + B, M) mean ranks, (M,) SD over its metrics, (M,) metric counts), then ``OVERALL`` (the mean
    of the category means, its SD over them, the total count); only the ``accepted`` metrics if given."""
    result = {}
    for category, names in CATEGORIES.items():
        keep = [k for k, m in enumerate(ranks.metrics) if m in names and (accepted is None or m in accepted)]
        if keep:
            part = ranks.ranks[:, :, keep]
            result[category] = (_mean(part, 2), _sd(part[0], 1), (~np.isnan(part[0])).sum(1))
    if result:
        means = np.stack([r[0] for r in result.values()], axis=2)
        result[OVERALL] = (_mean(means, 2), _sd(means[0], 1), sum(r[2] for r in result.values()))
    return result


def rank_positions(overall: np.ndarray) -> np.ndarray:
    """(R, M) overall rank positions (1 = the lowest mean rank; ties share the best position) of (R, M) means."""
    return stats.rankdata(overall, axis=1, method="min", nan_policy="omit")


def summarise(ranks: DomainRanks, accepted: set[str] | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ranking.csv's rows of one domain (``COLUMNS``; ``TRUSTED`` rows only when ``accepted`` is given and holds
    one of its metrics) and the frequency of each overall rank position over the resamples (methods × 1..M)."""
    groups = category_means(ranks)
    if accepted is not None:
        trusted = category_means(ranks, accepted)
        if OVERALL in trusted:
            groups[TRUSTED] = trusted[OVERALL]
    positions = rank_positions(groups[OVERALL][0][1:])
    frequencies = pd.DataFrame([[float(np.mean(positions[:, m] == p)) for p in range(1, len(ranks.methods) + 1)]
                                for m in range(len(ranks.methods))], index=ranks.methods,
                               columns=range(1, len(ranks.methods) + 1))
    rows = []
    for category, (means, sd, count) in groups.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            low, high = np.nanquantile(means[1:], [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
        for m, method in enumerate(ranks.methods):
            if count[m]:
                rows.append({"domain": ranks.domain, "method": method, "control": is_control(method),
                             "category": category, "mean_rank": means[0, m], "rank_sd": sd[m],
                             "n_metrics": int(count[m]), "rank_low": low[m], "rank_high": high[m],
                             "rank1_frequency": frequencies.iloc[m, 0] if category == OVERALL else np.nan})
    return pd.DataFrame(rows, columns=list(COLUMNS)), frequencies


def agreement_tests(ranks: DomainRanks) -> pd.DataFrame:
    """LATEC's test of whether a category's metrics agree on a method's rank more than random rankings would.

    For each method and category with two or more ranked metrics: the variance (ddof 0) of its K ranks across the
    category's metrics (row 0), and Levene's test (``scipy.stats.levene``, median-centred) of those K ranks against
    ranks drawn uniformly from 1..M (``REFERENCE_SIZE`` of them, each rank equally often; variance (M² − 1)/12).
    ``agrees``: the variance lies below the random one and p < ``ALPHA``.

    Returns:
        columns domain, method, category, n_metrics, variance, random_variance, p_value, agrees.
    """
    count = len(ranks.methods)
    reference = np.tile(np.arange(1.0, count + 1), -(-REFERENCE_SIZE // count))
    rows = []
    for category, names in CATEGORIES.items():
        keep = [k for k, m in enumerate(ranks.metrics) if m in names]
        for m, method in enumerate(ranks.methods):
            values = ranks.ranks[0, m, keep]
            values = values[~np.isnan(values)]
            if len(values) < 2 or count < 2:
                continue
            variance = float(np.var(values))
            p_value = float(stats.levene(values, reference, center="median").pvalue)
            rows.append({"domain": ranks.domain, "method": method, "category": category, "n_metrics": len(values),
                         "variance": variance, "random_variance": (count ** 2 - 1) / 12, "p_value": p_value,
                         "agrees": bool(variance < (count ** 2 - 1) / 12 and p_value < ALPHA)})
    return pd.DataFrame(rows, columns=["domain", "method", "category", "n_metrics", "variance", "random_variance",
                                       "p_value", "agrees"])


def read_trust(folder: Path) -> dict[str, set[str]] | None:
    """Domain → the metrics ``folder/trust.csv`` accepts; None without the file.

    Raises:
        UsageError: the file is unreadable, lacks a column, names an unknown domain or has an ``accepted`` value
            that is not true/false.
    """
    path = Path(folder) / TRUST_FILE
    if not path.is_file():
        return None
    fix = "it needs the columns domain, metric and accepted (true or false); rebuild it"
    try:
        table = pd.read_csv(path, dtype=str)
    except (OSError, ValueError) as error:
        raise UsageError(f"{path}: not readable ({type(error).__name__}); {fix}") from None
    if not {"domain", "metric", "accepted"} <= set(table.columns):
        raise UsageError(f"{path}: columns {', '.join(table.columns)}; {fix}")
    names = {**{d.label: name for name, d in DOMAINS.items()}, **{name: name for name in DOMAINS}}
    accepted = {}
    for row in table.itertuples():
        flag = str(row.accepted).strip().lower()
        if row.domain not in names:
            raise UsageError(f"{path}: row {row.Index + 2}: domain {row.domain!r} is none of {', '.join(DOMAINS)}; "
                             f"{fix}")
        if flag not in ("true", "false", "1", "0"):
            raise UsageError(f"{path}: row {row.Index + 2}: accepted {row.accepted!r} is not true or false; {fix}")
        accepted.setdefault(names[row.domain], set())
        if flag in ("true", "1"):
            accepted[names[row.domain]].add(row.metric)
    return accepted
