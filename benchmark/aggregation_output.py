"""The aggregated ranking of one run or several (``benchmark.aggregation``; docs/ranking.md) as files:
``ranking.csv`` (``aggregation.COLUMNS``) and ``ranking.md`` (per domain the ranks by category, the frequency of
each overall rank over the bootstrap resamples, LATEC's agreement test, the notes).

Several runs (conditions, classifiers, seeds) are aggregated by the mean of their per-run ranks: in each domain,
each method's rank on each metric is the mean over the runs of its rank in that run (and so in every resample:
runs of the same samples share their resamples, others are resampled independently), then categories and overall
as for one run. Only the methods that every run with the domain explains are ranked there.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.aggregation import (
    ALPHA,
    CATEGORIES,
    CONFIDENCE,
    OVERALL,
    RESAMPLES,
    TRUST_FILE,
    TRUSTED,
    DomainRanks,
    agreement_tests,
    domain_ranks,
    ranked_metrics,
    read_trust,
    sample_draws,
    summarise,
)
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from metrics import arrow


@dataclass(frozen=True)
class RankedRun:
    """One run to rank: ``label`` (its name in the notes), ``per_sample`` (per_sample.csv) and ``trust`` (domain →
    accepted metrics, ``aggregation.read_trust``; None without a trust table)."""

    label: str
    per_sample: pd.DataFrame
    trust: dict[str, set[str]] | None


@dataclass(frozen=True)
class Ranking:
    """``table``: ranking.csv's rows; ``frequencies``: domain → (methods × overall rank 1..M) shares of the
    resamples; ``tests``: ``aggregation.agreement_tests`` of every run, with its ``run`` label; ``notes``."""

    table: pd.DataFrame
    frequencies: dict[str, pd.DataFrame]
    tests: pd.DataFrame
    notes: list[str]


def aggregate(runs: list[RankedRun], seed: int, resamples: int = RESAMPLES) -> Ranking:
    """The aggregated ranking of ``runs`` (module doc), which rank the same metrics (``ranked_metrics`` of the
    first; the caller checks the others). Resamples: one ``numpy.random.default_rng(seed)`` draws them for each
    distinct set of sample ids in turn, so a single run's are ``sample_draws(n, default_rng(seed))``.

    Raises:
        ValueError: no run ranks a metric.
    """
    metrics = ranked_metrics(runs[0].per_sample)
    if not metrics:
        raise ValueError(f"{runs[0].label}: no metric of {', '.join(CATEGORIES)} to rank")
    rng, draws = np.random.default_rng(seed), {}
    domains = list(dict.fromkeys(d for r in runs for d in r.per_sample["domain"]))
    methods, left_out = {}, []
    for domain in domains:
        having = [r for r in runs if domain in set(r.per_sample["domain"])]
        labels = [list(dict.fromkeys(r.per_sample.loc[r.per_sample["domain"] == domain, "method"])) for r in having]
        methods[domain] = [m for m in labels[0] if all(m in other for other in labels[1:])]
        left_out += [f"{m} ({domain}: not in every run)" for m in dict.fromkeys(sum(labels, [])) if
                     m not in methods[domain]]
    per_run, tests = {}, []
    for run in runs:
        samples = tuple(np.sort(run.per_sample["sample_id"].unique()))
        if samples not in draws:
            draws[samples] = sample_draws(len(samples), rng, resamples)
        per_run[run.label] = domain_ranks(run.per_sample, draws[samples], metrics, methods)
        tests += [agreement_tests(ranks).assign(run=run.label) for ranks in per_run[run.label]]
    table, frequencies, trusted_metrics = [], {}, {}
    for domain in domains:
        parts = [r for ranks in per_run.values() for r in ranks if r.domain == domain]
        with warnings.catch_warnings():  # a metric without a value in one run is averaged over the others
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(np.stack([p.ranks for p in parts]), axis=0)
        accepted = (None if any(r.trust is None for r in runs)
                    else set.intersection(*(r.trust.get(domain, set()) for r in runs)))
        rows, frequencies[domain] = summarise(DomainRanks(domain, methods[domain], metrics, mean), accepted)
        table.append(rows)
        trusted_metrics[domain] = accepted
    notes = run_notes(runs, metrics, seed, resamples, left_out, trusted_metrics)
    return Ranking(pd.concat(table, ignore_index=True), frequencies, pd.concat(tests, ignore_index=True), notes)


def run_notes(runs: list[RankedRun], metrics: list[str], seed: int, resamples: int, left_out: list[str],
              trusted_metrics: dict[str, set[str] | None]) -> list[str]:
    """The legend of ranking.md: how the ranks, the intervals and the test are made, what was left out, and the
    metrics the trust tables accept per domain (``trusted_metrics``; None without a trust table)."""
    used = "; ".join(f"{c}: {', '.join(f'{m} {arrow(m)}' for m in names if m in metrics)}"
                     for c, names in CATEGORIES.items() if set(names) & set(metrics))
    notes = [f"rank per metric: the methods ordered by their median over the samples (NaN ignored), 1 = best by "
             f"the metric's direction (↑ higher, ↓ lower is better), ties sharing their mean rank; ranked: {used} "
             "(MM and the metrics of no category have no direction or category and are not ranked)",
             "cells: mean rank over the category's metrics ± its SD over them (ddof 0) [low, high]; overall: the mean "
             "of the category means ± their SD over the categories; n: the metrics ranked",
             f"[low, high]: {100 * CONFIDENCE:.0f} % percentile interval over {resamples} bootstrap resamples of the "
             f"samples (seed {seed}), paired: the same drawn samples for every method, metric and domain; rank 1: "
             "the share of resamples in which the method holds overall rank 1 (ties share it)",
             "controls (all-ones, random, energy) are ranked beside the methods and marked (control)",
             f"agreement (LATEC): Levene's test (median-centred) of a method's ranks across a category's metrics "
             f"against ranks drawn uniformly from 1..M; agree: their variance is below the random one, (M² − 1)/12, "
             f"and p < {ALPHA}"]
    if len(runs) > 1:
        notes.append(f"{len(runs)} runs, aggregated by the mean of their per-run ranks on each metric (and in each "
                     f"resample): {', '.join(r.label for r in runs)}")
    if left_out:
        notes.append(f"left out: {', '.join(left_out)}")
    if any(r.trust is None for r in runs):
        where = "the run's folder" if len(runs) == 1 else ", ".join(r.label for r in runs if r.trust is None)
        notes.append(f"no {TRUST_FILE} in {where}: no {TRUSTED} rows (the ranking over only the metrics a trust "
                     "table accepts)")
    else:
        none = f"none, so no {TRUSTED} rows"
        accepted = "; ".join(f"{domain}: {', '.join(m for m in metrics if m in names) or none}"
                             for domain, names in trusted_metrics.items())
        notes.append(f"{TRUSTED}: the overall mean rank over only the metrics that {TRUST_FILE} accepts (in every "
                     f"run): {accepted}")
    return notes


def cell(row: dict) -> str:
    """"mean ± sd [low, high] (n)" of a ranking.csv row."""
    return (f"{row['mean_rank']:.2f} ± {row['rank_sd']:.2f} [{row['rank_low']:.2f}, {row['rank_high']:.2f}] "
            f"({row['n_metrics']})")


def domain_markdown(ranking: Ranking, domain: str) -> list[str]:
    """One domain's three tables: ranks by category, overall rank frequencies, agreement test."""
    part = ranking.table[ranking.table["domain"] == domain]
    categories = [c for c in (*CATEGORIES, OVERALL, TRUSTED) if c in set(part["category"])]
    order = part[part["category"] == OVERALL].sort_values("mean_rank")["method"].tolist()
    label = DOMAINS[domain].label if domain in DOMAINS else domain
    names = {m: f"{m} (control)" if c else m for m, c in zip(part["method"], part["control"])}
    shown = []
    for method in order:
        cells = {r["category"]: r for r in part[part["method"] == method].to_dict("records")}
        row = {"method": names[method], **{c: cell(cells[c]) if c in cells else "n/a" for c in categories}}
        row["rank 1"] = f"{100 * cells[OVERALL]['rank1_frequency']:.0f} %"
        shown.append(row)
    frequencies = ranking.frequencies[domain].reindex(order)
    counts = pd.DataFrame({"method": [names[m] for m in order], **{
        str(p): ["" if v == 0 else f"{100 * v:.0f}" for v in frequencies[p]] for p in frequencies.columns}})
    tests = ranking.tests[ranking.tests["domain"] == domain]
    agreement = []
    for method in order:
        row = {"method": names[method]}
        for category in CATEGORIES:
            cases = tests[(tests["method"] == method) & (tests["category"] == category)]
            if len(cases) == 1:
                case = cases.iloc[0]
                verdict = "agree" if case["agrees"] else "no"
                row[category] = f"{verdict} (var {case['variance']:.2f}, p {case['p_value']:.3f})"
            elif len(cases):
                row[category] = f"agree in {int(cases['agrees'].sum())} of {len(cases)} runs"
        agreement.append(row)
    agreement = pd.DataFrame(agreement).dropna(axis=1, how="all")
    return [f"### {label}: mean rank by category (1 = best)", "",
            pd.DataFrame(shown).to_markdown(index=False, disable_numparse=True), "",
            f"#### {label}: how often each method holds each overall rank (% of resamples)", "",
            counts.to_markdown(index=False, disable_numparse=True), "",
            f"#### {label}: do the metrics of a category agree on the method's rank more than random ranks?", "",
            (agreement.to_markdown(index=False, disable_numparse=True) if len(agreement.columns) > 1
             else "no category with two or more ranked metrics"), ""]


def to_markdown(ranking: Ranking, title: str) -> str:
    """The whole ranking.md."""
    parts = [f"## {title} — aggregated ranking of the methods (LATEC)", ""]
    for domain in dict.fromkeys(ranking.table["domain"]):
        parts += domain_markdown(ranking, domain)
    return "\n".join([*parts, *[f"- {n}" for n in ranking.notes], ""])


def write_ranking(folder: Path, ranking: Ranking, title: str) -> str:
    """Write ranking.csv and ranking.md into ``folder`` (each replaced only once its new version is written);
    return the Markdown."""
    markdown = to_markdown(ranking, title)
    write_then_replace(folder / "ranking.csv", lambda path: ranking.table.to_csv(path, index=False))
    write_then_replace(folder / "ranking.md", lambda path: path.write_text(markdown))
    return markdown


def write_run_ranking(folder: Path, seed: int, title: str) -> str:
    """The ranking of the run whose per_sample.csv (and trust.csv, if any) lie in ``folder``, written there with
    the run's ``seed`` (the harness calls it beside the tables); return the Markdown."""
    run = RankedRun(Path(folder).name, pd.read_csv(Path(folder) / "per_sample.csv"), read_trust(folder))
    return write_ranking(Path(folder), aggregate([run], seed), title)
