"""``run_benchmark.py rankings RUN_DIR RUN_DIR [RUN_DIR ...] --out OUT``: does a ranking of the explanation methods
transfer from one classifier to another? Kendall τ-b between the classifiers' rankings of the methods, per metric,
domain and pair of runs, with paired bootstrap intervals over the shared samples (``benchmark.rankings``), and each
method's rank under each classifier.

Writes to ``--out``: ``rankings.csv`` (``benchmark.rankings.pair_taus``: one row per metric × domain × pair),
``ranks.csv`` (``method_ranks``: one row per metric × domain × method × classifier), ``rankings.md`` (the τ table,
rows metric × domain, columns the pairs, cells "τ [low, high]"; the rank tables per domain; notes) and
``rankings.png`` (τ and its interval per metric, one panel per domain, one marker per pair).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmark.agreement import CONFIDENCE, RESAMPLES
from benchmark.arguments import UsageError, check_writable_folder
from benchmark.output_folder import check_contents, check_location, claim_folder, committed_results
from benchmark.rankings import (
    DOMAIN_KINDS,
    OWN,
    SHARED,
    Run,
    check_same_settings,
    common_samples,
    method_ranks,
    pair_taus,
    read_runs,
)
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from metrics import arrow

OUTPUTS = ("rankings.csv", "ranks.csv", "rankings.md", "rankings.png")


def domain_label(kind: str, runs: list[Run]) -> str:
    """The table's name of a domain kind: "listenable (STFT→Mel)", or "own features (cnn14: mel, …)"."""
    if kind == SHARED:
        return DOMAINS[SHARED].label
    return f"{OWN} ({', '.join(f'{r.label}: {r.domains[OWN]}' for r in runs if OWN in r.domains)})"


def pair_name(row: dict) -> str:
    return f"{row['classifier_a']} vs {row['classifier_b']}"


def tau_cell(row: dict) -> str:
    """"τ [low, high]" with 2 decimals; "n/a" where τ is undefined (all means equal), "[n/a]" without interval."""
    if pd.isna(row["tau"]):
        return "n/a"
    interval = "n/a" if pd.isna(row["ci_low"]) else f"{row['ci_low']:+.2f}, {row['ci_high']:+.2f}"
    return f"{row['tau']:+.2f} [{interval}]"


def tau_table(taus: pd.DataFrame, runs: list[Run]) -> str:
    """The τ table in Markdown: rows metric × domain, one column per pair, cells ``tau_cell`` (n/a: no row)."""
    cells = taus.assign(pair=[pair_name(r) for r in taus.to_dict("records")],
                        cell=[tau_cell(r) for r in taus.to_dict("records")])
    pairs = list(dict.fromkeys(cells["pair"]))
    rows = list(dict.fromkeys(zip(cells["metric"], cells["domain"])))
    shown = cells.pivot(index=["metric", "domain"], columns="pair", values="cell").reindex(index=rows, columns=pairs)
    shown = shown.fillna("n/a").reset_index()
    shown["metric"] = [f"{m} {arrow(m)}" for m in shown["metric"]]
    shown["domain"] = [domain_label(k, runs) for k in shown["domain"]]
    return shown.to_markdown(index=False, disable_numparse=True)


def rank_table(ranks: pd.DataFrame, kind: str, labels: list[str]) -> str:
    """One domain's ranks in Markdown: a row per method, a column per metric, cells "rank under each classifier"
    joined by " / " (bold where they are equal), and how many metrics keep the method's rank in every run."""
    part = ranks[ranks["domain"] == kind]
    metrics = list(dict.fromkeys(part["metric"]))
    rows = []
    for method in dict.fromkeys(part["method"]):
        row, kept = {"method": method}, 0
        for metric in metrics:
            of_cell = part[(part["method"] == method) & (part["metric"] == metric)].set_index("classifier")["rank"]
            values = [of_cell.get(label) for label in labels if label in of_cell]
            text = " / ".join("n/a" if pd.isna(v) else f"{v:g}" for v in values)
            same = len(set(values)) == 1 and not pd.isna(values[0])
            kept += same
            row[f"{metric} {arrow(metric)}"] = f"**{text}**" if same else text
        row["keeps its rank"] = f"{kept} of {len(metrics)}"
        rows.append(row)
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def to_markdown(taus: pd.DataFrame, ranks: pd.DataFrame, runs: list[Run], notes: list[str]) -> str:
    """The whole rankings.md: the τ table, the rank tables (one per domain), the notes."""
    labels = [r.label for r in runs]
    parts = [f"## Do the methods' rankings transfer between classifiers? {', '.join(labels)}", "",
             tau_table(taus, runs), ""]
    for kind in (k for k in DOMAIN_KINDS if k in set(ranks["domain"])):
        having = [r.label for r in runs if kind in r.domains]
        parts += [f"### Rank of each method (1 = best), {domain_label(kind, runs)}: {' / '.join(having)}", "",
                  rank_table(ranks, kind, having), ""]
    return "\n".join([*parts, *[f"- {n}" for n in notes], ""])


def plot(taus: pd.DataFrame, runs: list[Run], path: Path) -> None:
    """τ and its interval per metric (y), one panel per domain kind, one marker per pair; written as PNG."""
    kinds = [k for k in DOMAIN_KINDS if k in set(taus["domain"])]
    pairs = list(dict.fromkeys(pair_name(r) for r in taus.to_dict("records")))
    metrics = list(dict.fromkeys(taus["metric"]))
    figure = Figure(figsize=(5.5 * max(1, len(kinds)), 0.35 * len(metrics) + 1.8), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, max(1, len(kinds)), sharey=True, squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        for k, (pair, marker) in enumerate(zip(pairs, "os^DvP<>Xh" * 10)):
            part = taus[(taus["domain"] == kind) & (taus.apply(pair_name, axis=1) == pair)]
            part = part.set_index("metric").reindex(metrics)
            y = np.arange(len(metrics)) + (k - (len(pairs) - 1) / 2) * 0.8 / max(1, len(pairs))
            error = [(part["tau"] - part["ci_low"]).clip(lower=0), (part["ci_high"] - part["tau"]).clip(lower=0)]
            axis.errorbar(part["tau"], y, xerr=error, fmt=marker, ms=4, capsize=3, label=pair)
        axis.axvline(0, color="grey", linewidth=0.8)
        axis.set_yticks(np.arange(len(metrics)), [f"{m} {arrow(m)}" for m in metrics])
        axis.set_xlim(-1.05, 1.05)
        axis.set_xlabel("Kendall τ-b between the classifiers' rankings")
        axis.set_title(domain_label(kind, runs), fontsize=9)
        axis.grid(axis="x", alpha=0.3)
    axes[0][0].invert_yaxis()
    axes[0][0].legend(fontsize=8, loc="lower left")
    figure.suptitle(f"Method rankings across classifiers ({100 * CONFIDENCE:.0f} % bootstrap intervals)", fontsize=9)
    figure.savefig(path, format="png", dpi=120)


def notes_of(taus: pd.DataFrame, runs: list[Run], samples: np.ndarray, sample_notes: list[str],
             include_controls: bool, seed: int) -> list[str]:
    """The legend under the tables: what τ, the interval and the ranks are, and what was left out."""
    controls = "control rows (all-ones, random, energy) included" if include_controls else \
        "control rows (all-ones, random, energy) left out (--include-controls ranks them too)"
    notes = [f"τ: Kendall τ-b between two classifiers' rankings of the methods both explain, by the methods' mean "
             f"score over the n = {len(samples)} samples every run evaluated; +1 the same order, 0 unrelated, −1 "
             f"reversed; {controls}",
             f"[low, high]: {100 * CONFIDENCE:.0f} % percentile bootstrap over samples, {RESAMPLES} resamples (seed "
             f"{seed}), paired: the same drawn samples for both classifiers, every metric and domain; an interval "
             "above 0 says the ranking carries over better than chance",
             f"{domain_label(OWN, runs)}: each classifier's own input grid; where two classifiers' grids differ, "
             "their rankings there are of maps on different grids",
             "ranks: 1 = best by the metric's direction (↑ higher, ↓ lower is better), ties share the best rank, "
             "among the methods every run explains in that domain; bold: the same rank under every classifier",
             *sample_notes]
    for kind in DOMAIN_KINDS:
        pairs = taus[taus["domain"] == kind].drop_duplicates(["classifier_a", "classifier_b"])
        left = [f"{r.classifier_a} vs {r.classifier_b}: {r.left_out.replace('; ', ', ')}"
                for r in pairs.itertuples() if r.left_out]
        if left:
            notes.append(f"left out of the {kind} rankings, per pair (explained by one of the two only): "
                         + "; ".join(left))
    notes += [f"{r.label}: {r.folder} (profile {r.config.get('profile', 'cpu')}, {r.config.get('dataset', 'esc50')} "
              f"{r.config.get('setting', 'ood')} {r.config.get('contamination', 'mixtures')}, seed "
              f"{r.config.get('seed', 0)})" for r in runs]
    return notes


def write_rankings(folders: list[str], out: Path, include_controls: bool = False, seed: int = 0) -> str:
    """Read and check the runs, compare their rankings and write ``OUTPUTS`` to ``out`` (each file replaced only
    once its new version is written); return the Markdown.

    Raises:
        UsageError: fewer than two runs, or runs that cannot be compared (``benchmark.rankings``).
        ValueError, FileExistsError: as ``claim_folder``.
    """
    if len(folders) < 2:
        raise UsageError(f"RUN_DIR: {len(folders)} run given; pass two or more run folders to compare")
    check_location(out, [("the repository's committed results", f) for f in committed_results()])
    check_contents(out, set(OUTPUTS), set())  # both again by claim_folder, before anything is written
    runs = read_runs(folders)
    check_same_settings(runs)
    samples, sample_notes = common_samples(runs)
    taus = pair_taus(runs, samples, include_controls, seed)
    if taus.empty:
        raise UsageError("RUN_DIR: the runs share no method, domain and metric to rank; pass runs of the same methods")
    ranks = method_ranks(runs, samples, include_controls)
    markdown = to_markdown(taus, ranks, runs, notes_of(taus, runs, samples, sample_notes, include_controls, seed))
    claim_folder(out, set(OUTPUTS))
    write_then_replace(out / "rankings.csv", lambda path: taus.to_csv(path, index=False))
    write_then_replace(out / "ranks.csv", lambda path: ranks.to_csv(path, index=False))
    write_then_replace(out / "rankings.md", lambda path: path.write_text(markdown))
    write_then_replace(out / "rankings.png", lambda path: plot(taus, runs, path))
    return markdown


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py rankings``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py rankings",
        description="Does a ranking of the explanation methods transfer from one classifier to another? For runs "
                    "of the same dataset and setting (the same evaluated samples) with different classifiers: per "
                    "metric, domain (listenable, and each classifier's own features: mel or waveform) and pair of "
                    "runs, Kendall τ-b between the classifiers' rankings of the methods both explain (by their mean "
                    f"score), with a {100 * CONFIDENCE:.0f} % paired percentile bootstrap interval over samples "
                    f"({RESAMPLES} resamples), and each method's rank under each classifier. Writes rankings.csv, "
                    "ranks.csv, rankings.md and rankings.png to --out.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="two or more finished run folders (per_sample.csv and run.json)")
    parser.add_argument("--out", default="results/runs/rankings", help="output folder (default results/runs/rankings)")
    parser.add_argument("--include-controls", action="store_true",
                        help="rank the control rows (all-ones, random, energy) with the methods (default: left out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py rankings RUN_DIR RUN_DIR ...``: ``write_rankings``."""
    check_writable_folder(args.out, "--out")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be a non-negative integer")
    return write_rankings(args.run_dirs, Path(args.out), args.include_controls, args.seed)
