"""Meta-evaluation of the metrics: which of them can be relied on, after MetaQuantus (Hedström et al., "The
Meta-Evaluation Problem in Explainable AI: Identifying Reliable Estimators with MetaQuantus", TMLR 2023;
docs/meta-evaluation.md).

Two perturbation tests, each at two levels: the input perturbation test (IPT: Gaussian noise on the domain's
features, ``perturbed_features``) and the model perturbation test (MPT: multiplicative Gaussian noise on every
parameter of the classifier, ``perturb_weights``); at the resilience level (NR, a small perturbation that keeps
the predictions) a reliable metric's scores stay as they were, at the adversary level (AR, a disruptive one) they
change. Every method explains and every metric scores the perturbed condition again; from the scores of one
draw (``draw_criteria``), on the samples whose prediction the perturbation kept (NR) or changed (AR), as
MetaQuantus:

- intra-consistency IAC: per method, the two-sided Wilcoxon signed-rank p-value (zero differences split) of
  the unperturbed against the perturbed scores; IAC_NR = mean p over the methods, IAC_AR = mean 1 − p;
- inter-consistency IEC: IEC_NR = the share of (sample, rank position) where the methods' order by the metric is
  the same (``np.argsort`` over the methods, stable); IEC_AR = the share of (method, sample) scores that the
  perturbation made worse, in the metric's direction;
- MC = the mean of the four, per draw; its mean and standard deviation over the draws (repetitions).

The pass/fail rule (``summarise``) is this benchmark's: resilient = IAC_NR and IEC_NR met, reactive = IAC_AR and
IEC_AR met (docs/meta-evaluation.md, "Criteria met").
"""
from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats

from benchmark.agreement import verdict
from benchmark.statistics import ALPHA
from classifiers.base import Classifier
from metrics import perturb_rows, registered_metrics, reported_metrics

TESTS = ("input", "model")
"""IPT and MPT."""
LEVELS = ("resilience", "adversary")
"""NR and AR."""
CRITERIA = ("IAC_NR", "IAC_AR", "IEC_NR", "IEC_AR")
DEFAULT_NOISE = {"input": (0.001, 10.0), "model": (0.001, 1.0)}
"""(resilience, adversary) levels: input noise as a multiple of each sample's standard deviation, weight noise as
the standard deviation of the multiplicative factor (MetaQuantus: 0.001 at both resilience levels; its input
adversary, uniform ±5 on images scaled to [0, 1], is about 10 times such an image's standard deviation;
docs/meta-evaluation.md has the predictions each level keeps)."""
INPUT_STREAM = 3
"""Repetition k's input noise of sample i is seeded by ``sample_seed(seed, i, stream=INPUT_STREAM + k)`` (0: the
explainers' draws, 1: the curves' ties, 2: the robustness metrics' perturbations)."""
IEC_AR_BAR = 0.75
"""IEC_AR is met at 3/4: halfway between a metric of noise (1/2 made worse) and 1."""
AGREEMENT_COLUMNS = ("domain", "metric", "truth", "tau", "ci_low", "ci_high")
"""The columns of ``agreement.csv`` (``benchmark.agreement``) that the trust table reads."""


def perturbed_features(features: torch.Tensor, level: float, seeds: list[int]) -> torch.Tensor:
    """The input perturbation of the IPT: ``metrics.perturb_features`` (Gaussian noise of ``level`` times each
    sample's own standard deviation, log1p magnitudes clamped at 0; the robustness metrics' perturbation), sample
    k drawn from a CPU generator seeded with ``seeds[k]``, so that a sample's draw does not depend on its batch.

    Args:
        features: (B, T, F) features of the domain; level: > 0; seeds: B seeds.
    Returns:
        (B, T, F), the same dtype and device.
    """
    return perturb_rows(features, level, [torch.Generator().manual_seed(seed) for seed in seeds])


def perturb_weights(classifier: Classifier, level: float, seed: int) -> Classifier:
    """A deep copy of ``classifier`` with every parameter w replaced by w·(1 + level·z), z ~ N(0, 1) per entry (the
    multiplicative noise of MetaQuantus's model perturbation test, Quantus's ``sample(mean=1, std=level)``);
    buffers (BatchNorm statistics) are kept, and the original is untouched.

    Args:
        level: > 0, the standard deviation of the factor.
        seed: seed of z (one CPU generator, so the draws do not depend on the device).
    Returns:
        the perturbed copy, in evaluation mode.
    """
    perturbed = copy.deepcopy(classifier).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in perturbed.parameters():
            z = torch.randn(parameter.shape, generator=generator).to(parameter.device, parameter.dtype)
            parameter.mul_(1 + level * z)
    return perturbed


def p_value(q: np.ndarray, q_hat: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value in [0, 1] of paired scores (``scipy.stats.wilcoxon``, zero
    differences split, as MetaQuantus); pairs with a NaN are dropped. 1 when every difference is 0; NaN
    without a pair. Below 6 pairs no p-value falls under 0.05 (the exact test's smallest is 2/2^n)."""
    q, q_hat = np.asarray(q, float), np.asarray(q_hat, float)
    paired = np.isfinite(q) & np.isfinite(q_hat)
    if not paired.any():
        return float("nan")
    if np.all(q[paired] == q_hat[paired]):
        return 1.0
    return float(stats.wilcoxon(q[paired], q_hat[paired], zero_method="zsplit", alternative="two-sided").pvalue)


def iec_resilience(scores: np.ndarray, perturbed: np.ndarray, subset: np.ndarray) -> float:
    """IEC_NR: the share in [0, 1] of (sample, rank position) where the methods' order is the same.

    Args:
        scores, perturbed: (M, n) scores of M methods on n samples, unperturbed and perturbed.
        subset: (n,) bool, the samples whose prediction the perturbation kept; a sample with a NaN score is
            left out.
    Returns:
        the share, NaN without a sample. A metric of noise gets 1/M on average, a constant one 1.
    """
    keep = subset & np.all(np.isfinite(scores) & np.isfinite(perturbed), axis=0)
    if not keep.any():
        return float("nan")
    order = np.argsort(scores[:, keep], axis=0, kind="stable")
    return float(np.mean(order == np.argsort(perturbed[:, keep], axis=0, kind="stable")))


def iec_adversary(scores: np.ndarray, perturbed: np.ndarray, subset: np.ndarray, higher_is_better: bool) -> float:
    """IEC_AR: the share in [0, 1] of (method, sample) scores that the perturbation made worse (lower where higher
    is better, higher where lower is better); a tie is not worse.

    Args:
        scores, perturbed: (M, n) scores, unperturbed and perturbed; subset: (n,) bool, the samples whose prediction
            the perturbation changed; pairs with a NaN are left out.
    Returns:
        the share, NaN without a pair. A metric of noise gets 1/2 on average, a constant one 0.
    """
    a, b = scores[:, subset], perturbed[:, subset]
    paired = np.isfinite(a) & np.isfinite(b)
    if not paired.any():
        return float("nan")
    worse = b < a if higher_is_better else b > a
    return float(np.mean(worse[paired]))


def draw_criteria(scores: np.ndarray, resilience: np.ndarray, kept: np.ndarray, adversary: np.ndarray,
                  changed: np.ndarray, higher_is_better: bool) -> dict[str, float]:
    """The four criteria of one draw of one test, for one metric (module doc).

    Args:
        scores: (M, n) unperturbed scores of M methods on n samples; resilience, adversary: (M, n) the scores under
            the NR and AR perturbation; kept: (n,) bool, the NR perturbation kept the prediction; changed: (n,) bool,
            the AR perturbation changed it; higher_is_better: the metric's direction.
    Returns:
        IAC_NR, IAC_AR, IEC_NR, IEC_AR in [0, 1] (1 is the ideal of each); MC, their mean (NaN when one is
        undefined: no sample kept or changed its prediction); IAC_NR_share, the share of the methods whose
        Wilcoxon test keeps equality (p ≥ 0.05), and IAC_AR_share, the share whose test rejects it (p < 0.05).
    """
    p_nr = np.array([p_value(s[kept], r[kept]) for s, r in zip(scores, resilience)])
    p_ar = np.array([p_value(s[changed], r[changed]) for s, r in zip(scores, adversary)])
    with warnings.catch_warnings():  # no sample in the subset: NaN criteria, said in the tables
        warnings.simplefilter("ignore", RuntimeWarning)
        values = {"IAC_NR": np.nanmean(p_nr), "IAC_AR": np.nanmean(1 - p_ar),
                  "IEC_NR": iec_resilience(scores, resilience, kept),
                  "IEC_AR": iec_adversary(scores, adversary, changed, higher_is_better)}
        values["MC"] = float(np.mean([values[c] for c in CRITERIA]))
        values["IAC_NR_share"] = np.nanmean(np.where(np.isnan(p_nr), np.nan, p_nr >= ALPHA))
        values["IAC_AR_share"] = np.nanmean(np.where(np.isnan(p_ar), np.nan, p_ar < ALPHA))
    return {name: float(value) for name, value in values.items()}


def directed_metrics(scores: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(metrics meta-evaluated, metrics left out for having no direction): the metrics the tables report
    (``metrics.reported_metrics``; not the per_sample.csv-only columns such as the curve points Ins@k %, Del@k %,
    which Ins-AUC and Del-AUC summarise) with a column in ``scores``, in registration order."""
    present = [name for name in reported_metrics() if name in scores]
    return ([m for m in present if registered_metrics()[m].higher_is_better is not None],
            [m for m in present if registered_metrics()[m].higher_is_better is None])


def criteria_of_draws(scores: pd.DataFrame) -> pd.DataFrame:
    """``draw_criteria`` of every domain × directed metric × test × repetition.

    Args:
        scores: one row per domain, test ("none" for the unperturbed condition, "input", "model"), level ("none",
            "resilience", "adversary"), repetition, method and sample, with the columns ``predicted`` and the
            metrics (``benchmark.commands.meta_evaluate``'s ``meta_scores.csv``).
    Returns:
        columns domain, metric, test, repetition, methods (M), kept, changed (samples), then ``draw_criteria``'s;
        a metric without a value in a domain is left out there.
    """
    metrics, _ = directed_metrics(scores)
    rows = []
    for domain, in_domain in scores.groupby("domain", sort=False):
        base = in_domain[in_domain["level"] == "none"]
        methods, samples = list(dict.fromkeys(base["method"])), sorted(base["sample_id"].unique())

        def matrix(condition: pd.DataFrame, column: str) -> np.ndarray:
            """(M, n) values of ``column``: the methods in their order, the samples sorted."""
            return condition.pivot(index="method", columns="sample_id", values=column).loc[methods, samples].to_numpy(
                float)

        predicted = matrix(base, "predicted")[0]
        for (test, repetition), draw in in_domain[in_domain["level"] != "none"].groupby(["test", "repetition"],
                                                                                          sort=False):
            nr, ar = (draw[draw["level"] == level] for level in LEVELS)
            kept, changed = matrix(nr, "predicted")[0] == predicted, matrix(ar, "predicted")[0] != predicted
            for metric in (m for m in metrics if base[m].notna().any()):
                rows.append({"domain": domain, "metric": metric, "test": test, "repetition": repetition,
                             "methods": len(methods), "kept": int(kept.sum()), "changed": int(changed.sum()),
                             **draw_criteria(matrix(base, metric), matrix(nr, metric), kept, matrix(ar, metric),
                                             changed, registered_metrics()[metric].higher_is_better)})
    return pd.DataFrame(rows)


def summarise(draws: pd.DataFrame) -> pd.DataFrame:
    """Per domain × metric × test: each criterion's mean over the repetitions, MC's mean and standard deviation
    (MC_sd, ddof 0 as MetaQuantus; over the draws with an MC), the mean kept and changed samples, and whether the
    criteria are met (docs/meta-evaluation.md):

    - IAC_NR: most Wilcoxon tests (of every method and repetition) keep equality, IAC_NR_share > 1/2;
    - IEC_NR: IEC_NR ≥ (1 + 1/M)/2, halfway between a metric of noise (1/M of the ranks kept) and 1;
    - IAC_AR: most tests reject equality, IAC_AR_share > 1/2;
    - IEC_AR: IEC_AR ≥ ``IEC_AR_BAR`` (3/4).

    resilient = IAC_NR and IEC_NR met; reactive = IAC_AR and IEC_AR met (a NaN criterion is not met).
    """
    groups = draws.groupby(["domain", "metric", "test"], sort=False)
    table = groups[[*CRITERIA, "MC", "IAC_NR_share", "IAC_AR_share", "kept", "changed"]].mean()
    table["MC_sd"] = groups["MC"].std(ddof=0)
    table["methods"], table["repetitions"] = groups["methods"].first(), groups["repetition"].nunique()
    table = table.reset_index()
    table["resilient"] = (table["IAC_NR_share"] > 0.5) & (table["IEC_NR"] >= (1 + 1 / table["methods"]) / 2)
    table["reactive"] = (table["IAC_AR_share"] > 0.5) & (table["IEC_AR"] >= IEC_AR_BAR)
    return table[["domain", "metric", "test", *CRITERIA, "MC", "MC_sd", "resilient", "reactive", "IAC_NR_share",
                  "IAC_AR_share", "methods", "kept", "changed", "repetitions"]]


def read_agreement(path: str) -> pd.DataFrame:
    """The ``agreement.csv`` of a run on the controlled dataset (``benchmark.agreement``).

    Raises:
        ValueError: no such file, not a CSV table, or without the columns ``AGREEMENT_COLUMNS``.
    """
    fix = "pass the agreement.csv that a run with --dataset controlled writes"
    if not Path(path).is_file():
        raise ValueError(f"--agreement {path}: no such file; {fix}")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        raise ValueError(f"--agreement {path}: not a CSV table; {fix}") from None
    missing = [c for c in AGREEMENT_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"--agreement {path} lacks the column(s) {', '.join(missing)}; {fix}")
    return table


def truth_verdict(rows: pd.DataFrame) -> tuple[str, str]:
    """The agreement of one domain × metric with the ground truth, from its ``agreement.csv`` rows (one per truth
    score): "disagrees" when any interval lies below 0, "agrees" when every one lies above 0, else "undecided";
    "not measured" without a row. Also the τ of each truth score in words."""
    if rows.empty:
        return "not measured", ""
    verdicts = [verdict(r) for r in rows.to_dict("records")]
    text = "; ".join(f"τ vs {r['truth']} {r['tau']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}]"
                     for r in rows.to_dict("records"))
    return ("disagrees" if "disagrees" in verdicts else "agrees" if set(verdicts) == {"agrees"} else "undecided"), text


def trust_table(draws: pd.DataFrame, summary: pd.DataFrame, agreement: pd.DataFrame | None) -> pd.DataFrame:
    """One row per domain × metric: accepted, agrees_with_truth (``truth_verdict``), resilient and reactive in both
    tests, MC (the mean of the tests' MC per repetition, averaged: MetaQuantus's MC̄) and MC_sd (over the
    repetitions), MC_input and MC_model, the τ in words.

    accepted = resilient and reactive and agrees_with_truth is not "disagrees" (docs/meta-evaluation.md).
    """
    rows = []
    for (domain, metric), tests in summary.groupby(["domain", "metric"], sort=False):
        mine = draws[(draws["domain"] == domain) & (draws["metric"] == metric)]
        mc = mine.groupby("repetition")["MC"].agg(lambda m: m.mean(skipna=False)).dropna()  # both tests' MC
        judged = (agreement[(agreement["domain"] == domain) & (agreement["metric"] == metric)]
                  if agreement is not None else pd.DataFrame())
        agrees, taus = truth_verdict(judged)
        resilient, reactive = bool(tests["resilient"].all()), bool(tests["reactive"].all())
        by_test = dict(zip(tests["test"], tests["MC"]))
        rows.append({"domain": domain, "metric": metric,
                     "accepted": resilient and reactive and agrees != "disagrees", "agrees_with_truth": agrees,
                     "resilient": resilient, "reactive": reactive, "MC": mc.mean() if len(mc) else math.nan,
                     "MC_sd": mc.std(ddof=0) if len(mc) else math.nan, "MC_input": by_test.get("input", math.nan),
                     "MC_model": by_test.get("model", math.nan), "agreement": taus})
    return pd.DataFrame(rows)
