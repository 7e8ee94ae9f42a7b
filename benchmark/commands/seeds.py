"""Spread over training seeds (``run_benchmark.py --seeds 0,1,2``).

Float noise in training moves results more than many differences a table is read for, so a run
can repeat its training with several seeds: the classifier and the trainable explainers are trained
once per seed (cached as any training is), each seed's run is a complete run in ``OUT/seed-<s>/``
(resumable, with its own tables), and ``OUT`` gets the tables of the per-sample values averaged over
the seeds, with the standard deviation of the per-seed means beside each cell's confidence interval.
The evaluated samples (contaminant draws) and the explainers' own random draws keep ``--seed``, so
the seeds differ only in what was trained.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.stats

from benchmark import tables
from benchmark.config import RunConfig, condition_name
from benchmark.harness import run
from benchmark.output_folder import claim_folder
from benchmark.summary import SUMMARY, write_summary
from methods import build_explainers
from metrics import reported_metrics

SEED_FILES = ("per_sample_seed_mean.csv", "table.csv", "table.md", "table.tex", "figure.png", "seeds.json")


def seed_run_config(config: RunConfig, training_seed: int) -> RunConfig:
    """The configuration of one seed's run: ``OUT/seed-<s>/``; the training seed equal to ``--seed``
    is left unset, so that this run is the same configuration as the plain run (and resumes it)."""
    return replace(config, out=str(Path(config.out) / f"seed-{training_seed}"),
                   training_seed=None if training_seed == config.seed else training_seed)


def average_over_seeds(frames: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """Per-sample metric values averaged over the seeds' per_sample.csv frames (NaN ignored): one row
    per (domain, method, sample_id), as a per_sample.csv."""
    metrics = [m for m in reported_metrics() if all(m in f for f in frames.values())]
    stacked = pd.concat(list(frames.values()), ignore_index=True)
    keys = ["domain", "method", "sample_id"]
    averaged = stacked.groupby(keys, sort=False)[metrics].mean().reset_index()
    curves = [c for c in stacked.columns if c.startswith(("Ins@", "Del@"))]
    if curves:
        averaged = averaged.merge(stacked.groupby(keys, sort=False)[curves].mean().reset_index(), on=keys)
    return averaged


def run_seeds(config: RunConfig, training_seeds: list[int]) -> str | None:
    """Run the benchmark once per training seed, then write the seed-averaged tables to ``config.out``.

    Writes ``OUT/seed-<s>/`` (complete runs), and in ``OUT``: per_sample_seed_mean.csv, table.csv
    (with ``<metric>_seed_sd`` and the 95 % Student-t interval of the per-seed means,
    ``<metric>_seed_ci_low`` / ``_seed_ci_high``), table.md, table.tex, figure.png and seeds.json, each replaced only
    when all are written, then summary.json (``benchmark.summary``). Returns the Markdown table (None on the ranks
    other than 0 of a torchrun launch).

    Raises:
        whatever ``benchmark.harness.run`` raises for bad input (before anything trains for the first
        seed; later seeds are checked by their own runs).
    """
    out = Path(config.out)
    claim_folder(out, {*SEED_FILES, SUMMARY, "seed-*", ".seeds-unfinished"})  # each seed-<s>/ is a run's own folder
    frames, accuracies = {}, {}
    for training_seed in training_seeds:
        seed_config = seed_run_config(config, training_seed)
        print(f"training seed {training_seed}: {seed_config.out}")
        if run(seed_config) is None:
            continue  # a rank other than 0 of a torchrun launch: rank 0 writes the tables
        frames[training_seed] = pd.read_csv(Path(seed_config.out) / "per_sample.csv")
        accuracies[training_seed] = tables.classifier_accuracy(frames[training_seed])
    if not frames:
        return None
    explainers = build_explainers(config.methods, config.method_options)
    rows = [(d, e.label) for d in config.domains for e in explainers]
    controls = {e.label for e in explainers if e.control}
    averaged = average_over_seeds(frames)
    table = tables.summarise(averaged, rows, controls, config.seed)
    columns = tables.shown_columns(averaged)
    seed_means = {s: f.groupby(["domain", "method"])[columns].mean() for s, f in frames.items()}
    for metric in columns:
        per_seed = pd.DataFrame({s: [means[metric].get(row, float("nan")) for row in rows]
                                 for s, means in seed_means.items()})
        sd, mean, k = per_seed.std(axis=1, ddof=1), per_seed.mean(axis=1), per_seed.notna().sum(axis=1)
        half_width = scipy.stats.t.ppf(0.975, (k - 1).clip(lower=1)) * sd / np.sqrt(k)
        at = table.columns.get_loc(f"{metric}_top") + 1
        for offset, (name, values) in enumerate((("seed_sd", sd), ("seed_ci_low", mean - half_width),
                                                 ("seed_ci_high", mean + half_width))):
            table.insert(at + offset, f"{metric}_{name}", values)
    shown = ", ".join(f"{100 * a:.1f} %" for a in accuracies.values())
    title = (f"{config.dataset} — {condition_name(config)} — training seeds {', '.join(map(str, training_seeds))} — "
             f"classifier accuracy {shown}, n = {averaged['sample_id'].nunique()}")
    notes = [tables.statistics_note(config.seed),
             f"each sample's value is averaged over the {len(training_seeds)} training seeds before the mean, the "
             "interval and the test; (σ s, seeds ± h): standard deviation of the per-seed means (seed-<s>/table.md) "
             "and the half-width of their 95 % Student-t interval, the spread a retrain gives; the per-sample "
             "interval before it does not cover that spread",
             f"profile: {config.profile}; contaminant draws and the explainers' random draws: seed {config.seed}",
             *tables.data_notes(averaged, table)]
    partial = out / ".seeds-unfinished"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    averaged.to_csv(partial / "per_sample_seed_mean.csv", index=False)
    tables.write_table_files(partial, table, averaged, title, notes)
    (partial / "seeds.json").write_text(json.dumps({
        "training_seeds": training_seeds, "runs": [f"seed-{s}" for s in training_seeds],
        "classifier_accuracy": {str(s): a for s, a in accuracies.items()}}, indent=1))
    for name in SEED_FILES:
        os.replace(partial / name, out / name)
    partial.rmdir()
    write_summary(out)  # from table.csv, seeds.json and the seed runs' run.json (docs/leaderboard.md)
    return (out / "table.md").read_text()
