"""Does a ranking of explanation methods transfer from one classifier to another?

Runs of the same dataset and setting with different classifiers evaluate the same samples (same seed, split and
contaminant draws). For each pair of runs, each metric with a direction (``metrics.table_columns``: AI, AD, AG, FF,
Fid-In, SPS, COMP, and Ins-AUC, Del-AUC, Loc-AUC, Loc-mass where the runs have them; MM has no direction) and each
domain, the methods both runs explain are ranked by their mean score under either classifier, and the two rankings
are compared by Kendall's τ-b (``benchmark.agreement.kendall_tau``): +1 the same order, 0 unrelated, −1 reversed.
The domains compared are the listenable one, which every classifier shares, and "own features": the grid of each
classifier's own input (mel for CNN14 and the AST, waveform frames for wav2vec2), so a pair may compare two
different grids there. The control rows (all-ones, random, energy) are left out of the rankings unless asked for.

The 95 % interval is a paired percentile bootstrap over samples, as ``benchmark.agreement``: each of ``RESAMPLES``
resamples draws sample ids with replacement once, for both classifiers, every metric and domain, and the method
means and τ are recomputed on it (a resample where τ is undefined, e.g. all means equal, is dropped).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.agreement import RESAMPLES, means, tau_with_interval
from benchmark.arguments import UsageError
from benchmark.config import RunConfig
from methods.registry import control_methods
from metrics import registered_metrics, table_columns

RUN_FILES = ("per_sample.csv", "run.json")
SHARED = "listenable"
OWN = "own features"
DOMAIN_KINDS = (SHARED, OWN)
SAME_SETTINGS = {"dataset": "--dataset", "setting": "--setting", "contamination": "--contamination", "seed": "--seed",
                 "folds": "--folds", "data_folds": "--data-folds", "peak_normalisation": "--peak-normalisation",
                 "ad_softmax_twice": "--ad-single-softmax"}
"""Run options that must agree: they decide which samples are evaluated and how AD is computed."""
SAMPLE_COLUMNS = ("clip", "contamination", "contaminant", "noise_seed", "gain_x", "gain_c", "label")
"""Columns of per_sample.csv that describe a sample (not the classifier's answer): equal ids must agree on them."""


@dataclass(frozen=True)
class Run:
    """One run folder: ``label`` (its classifier's name, made unique among the compared runs), its run.json
    ``config`` (dict), ``per_sample`` (per_sample.csv), ``domains`` (domain kind → the run's domain name, e.g.
    {"listenable": "listenable", "own features": "mel"})."""

    folder: Path
    label: str
    config: dict
    per_sample: pd.DataFrame
    domains: dict[str, str]


def read_run(folder: Path, label: str | None = None) -> Run:
    """Read a run folder (``RUN_FILES``).

    Raises:
        UsageError: a file is missing or unreadable, a column is missing, a (sample, domain, method) repeats, or
            the run has more than one domain besides the listenable one.
    """
    for name in RUN_FILES:
        if not (folder / name).is_file():
            raise UsageError(f"RUN_DIR {folder}: no {name}; pass the --out folder of a finished run (it holds "
                             f"{' and '.join(RUN_FILES)})")
    try:
        config = json.loads((folder / "run.json").read_text(encoding="utf-8"))["config"]
        per_sample = pd.read_csv(folder / "per_sample.csv")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"RUN_DIR {folder}: run.json or per_sample.csv is not readable ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}); pass a finished run's folder") from None
    missing = [c for c in ("sample_id", "domain", "method") if c not in per_sample]
    if missing:
        raise UsageError(f"RUN_DIR {folder}: per_sample.csv lacks the column(s) {', '.join(missing)}; pass a "
                         "finished run's folder")
    repeated = per_sample.duplicated(["sample_id", "domain", "method"])
    if repeated.any():
        first = per_sample[repeated].iloc[0]
        raise UsageError(f"RUN_DIR {folder}: per_sample.csv holds sample {first['sample_id']} ({first['domain']}, "
                         f"{first['method']}) more than once; rebuild the run")
    names = list(dict.fromkeys(per_sample["domain"]))
    own = [d for d in names if d != SHARED]
    if len(own) > 1:
        raise UsageError(f"RUN_DIR {folder}: domains {', '.join(own)} besides listenable; a classifier has one own "
                         "feature domain")
    domains = {**({SHARED: SHARED} if SHARED in names else {}), **({OWN: own[0]} if own else {})}
    return Run(folder, label or str(config.get("classifier", "cnn14")), config, per_sample, domains)


def read_runs(folders: list[str | Path]) -> list[Run]:
    """Read the runs; labels are their classifiers' names, with the folder's name (and a number where that
    is still not enough) added to a name that repeats."""
    runs = [read_run(Path(f)) for f in folders]
    labels = [r.label for r in runs]
    labels = [f"{r.label} ({r.folder.name})" if labels.count(r.label) > 1 else r.label for r in runs]
    labels = [f"{label} #{i + 1}" if labels.count(label) > 1 else label for i, label in enumerate(labels)]
    return [Run(r.folder, label, r.config, r.per_sample, r.domains) for r, label in zip(runs, labels)]


def check_same_settings(runs: list[Run]) -> None:
    """Raise ``UsageError`` naming the option and both folders when two runs differ in ``SAME_SETTINGS``."""
    defaults = {f.name: f.default for f in fields(RunConfig)}
    first = runs[0]
    for run in runs[1:]:
        for key, flag in SAME_SETTINGS.items():
            a, b = (r.config.get(key, defaults.get(key)) for r in (first, run))
            if a != b:
                raise UsageError(f"RUN_DIR {run.folder} was run with {key} {b!r}, {first.folder} with {a!r} "
                                 f"({flag}): rankings compares runs of one dataset and setting on the same samples; "
                                 "pass runs that differ only in the classifier")


def common_samples(runs: list[Run]) -> tuple[np.ndarray, list[str]]:
    """The sample ids every run evaluated, sorted, and notes on samples left out.

    Raises:
        UsageError: a sample id stands for different samples in two runs (another clip, contaminant, gain, label),
            or fewer than two samples are common to all runs.
    """
    described = {}
    for run in runs:
        columns = ["sample_id", *(c for c in SAMPLE_COLUMNS if c in run.per_sample)]
        described[run.label] = run.per_sample[columns].drop_duplicates("sample_id").set_index("sample_id")
    first = runs[0]
    for run in runs[1:]:
        a, b = described[first.label], described[run.label]
        shared = a.index.intersection(b.index)
        for column in a.columns.intersection(b.columns):
            x, y = a.loc[shared, column], b.loc[shared, column]
            differ = ~((x == y) | (x.isna() & y.isna()))
            if differ.any():
                sample = differ[differ].index[0]
                raise UsageError(f"RUN_DIR {run.folder}: sample {sample} is {column} {y[sample]!r} there but "
                                 f"{x[sample]!r} in {first.folder}: the runs evaluated different samples (another "
                                 "seed, split or data); pass runs of the same samples")
    ids = sorted(set.intersection(*(set(d.index) for d in described.values())))
    if len(ids) < 2:
        raise UsageError(f"RUN_DIR: the runs share {len(ids)} evaluated sample(s); pass runs of the same samples")
    notes = [f"{run.label} ({run.folder}) evaluated {len(described[run.label]) - len(ids)} samples that another run "
             f"did not; only the {len(ids)} samples of every run are used" for run in runs
             if len(described[run.label]) > len(ids)]
    return np.array(ids), notes


def ranked_metrics() -> list[str]:
    """The table's metric columns that have a direction (all but MM), in the tables' order."""
    return [m for m in table_columns() if registered_metrics()[m].higher_is_better is not None]


def is_control(method: str) -> bool:
    """Whether a method label ("random", "l2i rth=0.2", …) is a control row."""
    return method.split(" ")[0] in control_methods()


def methods_of(run: Run, kind: str, include_controls: bool) -> list[str]:
    """The methods ``run`` explains in the domain of ``kind``, in its order ([] without that domain)."""
    if kind not in run.domains:
        return []
    labels = dict.fromkeys(run.per_sample.loc[run.per_sample["domain"] == run.domains[kind], "method"])
    return [m for m in labels if include_controls or not is_control(m)]


def score_matrix(run: Run, kind: str, metric: str, methods: list[str], samples: np.ndarray) -> np.ndarray | None:
    """(M, n) float scores of ``methods`` × ``samples`` on ``metric`` in the domain of ``kind`` (NaN where missing);
    None when the run has no value of the metric there."""
    rows = run.per_sample[run.per_sample["domain"] == run.domains[kind]]
    if metric not in rows or not rows[metric].notna().any():
        return None
    return rows.pivot(index="method", columns="sample_id", values=metric).reindex(index=methods, columns=samples) \
        .to_numpy(float)


def pair_taus(runs: list[Run], samples: np.ndarray, include_controls: bool, seed: int,
              resamples: int = RESAMPLES) -> pd.DataFrame:
    """τ-b with its bootstrap interval for every metric × domain kind × pair of runs (module doc).

    Returns:
        columns metric, domain (``DOMAIN_KINDS``), classifier_a, classifier_b, domain_a, domain_b, tau, ci_low,
        ci_high, methods (count ranked), ranked (their labels, "; "), left_out ("method (label only)", "; "), n
        (samples), resamples, seed; a pair lacking the domain or the metric has no row.
    Raises:
        ValueError: ``resamples`` < 1.
    """
    if resamples < 1:
        raise ValueError("resamples must be at least 1")
    draws = np.random.default_rng(seed).integers(len(samples), size=(resamples, len(samples)))
    rows = []
    for metric in ranked_metrics():
        for kind in DOMAIN_KINDS:
            for i, run_a in enumerate(runs):
                for run_b in runs[i + 1:]:
                    of_a, of_b = methods_of(run_a, kind, include_controls), methods_of(run_b, kind, include_controls)
                    shared = [m for m in of_a if m in of_b]
                    if not shared:
                        continue
                    a, b = (score_matrix(r, kind, metric, shared, samples) for r in (run_a, run_b))
                    if a is None or b is None:
                        continue
                    tau, low, high = tau_with_interval(a, b, draws)
                    left_out = [f"{m} ({run_a.label} only)" for m in of_a if m not in shared] + \
                               [f"{m} ({run_b.label} only)" for m in of_b if m not in shared]
                    rows.append({"metric": metric, "domain": kind, "classifier_a": run_a.label,
                                 "classifier_b": run_b.label, "domain_a": run_a.domains[kind],
                                 "domain_b": run_b.domains[kind], "tau": tau, "ci_low": low, "ci_high": high,
                                 "methods": len(shared), "ranked": "; ".join(shared), "left_out": "; ".join(left_out),
                                 "n": len(samples), "resamples": resamples, "seed": seed})
    return pd.DataFrame(rows, columns=["metric", "domain", "classifier_a", "classifier_b", "domain_a", "domain_b",
                                       "tau", "ci_low", "ci_high", "methods", "ranked", "left_out", "n",
                                       "resamples", "seed"])


def method_ranks(runs: list[Run], samples: np.ndarray, include_controls: bool) -> pd.DataFrame:
    """Each method's mean and rank (1 = best by the metric's direction; ties share the best rank) under every
    classifier, per metric and domain kind, among the methods that every run with that domain explains.

    Returns:
        columns metric, domain (kind), method, classifier, domain_name (the run's own), mean, rank.
    """
    rows = []
    for kind in DOMAIN_KINDS:
        having = [r for r in runs if kind in r.domains]
        shared = [m for m in methods_of(having[0], kind, include_controls)
                  if all(m in methods_of(r, kind, include_controls) for r in having[1:])] if len(having) > 1 else []
        for metric in ranked_metrics():
            matrices = [score_matrix(r, kind, metric, shared, samples) for r in having] if shared else [None]
            if any(m is None for m in matrices):
                continue
            sign = -1.0 if registered_metrics()[metric].higher_is_better else 1.0
            for run, scores in zip(having, matrices):
                mean = pd.Series(means(scores), index=shared)
                rank = (sign * mean).rank(method="min")
                rows += [{"metric": metric, "domain": kind, "method": m, "classifier": run.label,
                          "domain_name": run.domains[kind], "mean": mean[m], "rank": rank[m]} for m in shared]
    return pd.DataFrame(rows, columns=["metric", "domain", "method", "classifier", "domain_name", "mean", "rank"])
