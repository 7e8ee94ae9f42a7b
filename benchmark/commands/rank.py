"""``run_benchmark.py rank RUN_DIR [RUN_DIR ...] [--out FOLDER]``: the aggregated ranking of the methods, as
LATEC (Klein et al., NeurIPS 2024) builds it (``benchmark.aggregation``; docs/ranking.md).

One RUN_DIR without ``--out`` (re)writes ``ranking.csv`` and ``ranking.md`` into that run's own folder, as the
run itself does at its end, so that a finished run gets its ranking without running again. Several RUN_DIRs
(conditions, classifiers, seeds) are aggregated into one ranking by the mean of their per-run ranks
(``benchmark.aggregation_output``), written to ``--out``. Runs are refused (exit 2, one line naming them and
what differs) when they rank different metric columns, or when two runs of one condition (dataset, setting,
contamination) evaluated different sample ids.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

from benchmark.aggregation import RANKING_FILES, ranked_metrics, read_trust
from benchmark.aggregation_output import RankedRun, aggregate, write_ranking
from benchmark.arguments import UsageError, check_writable_folder
from benchmark.config import RunConfig, condition_name
from benchmark.output_folder import check_contents, check_location, claim_folder, committed_results
from benchmark.rankings import Run, read_runs

DEFAULT_OUT = "results/runs/ranking"


def setting(run: Run, key: str):
    """A run.json setting, or ``RunConfig``'s default where an older run.json lacks it."""
    return run.config.get(key, {f.name: f.default for f in fields(RunConfig)}.get(key))


def condition(run: Run) -> str:
    """The run's condition in words: dataset and ``config.condition_name``, e.g. "esc50 ood mixtures"."""
    names = SimpleNamespace(setting=setting(run, "setting"), contamination=setting(run, "contamination"))
    return f"{setting(run, 'dataset')} {condition_name(names)}"


def check_runs(runs: list[Run]) -> None:
    """Refuse runs that cannot be aggregated (module doc).

    Raises:
        UsageError: a run ranks other metric columns than the first, or two runs of one condition evaluated
            different sample ids; the message names both folders and what differs.
    """
    first = runs[0]
    columns = set(ranked_metrics(first.per_sample))
    for run in runs[1:]:
        other = set(ranked_metrics(run.per_sample))
        if other != columns:
            only = ", ".join(f"{m} ({first.folder if m in columns else run.folder} only)"
                             for m in sorted(columns ^ other))
            raise UsageError(f"RUN_DIR {run.folder} and {first.folder} rank different metric columns: {only}; rank "
                             "aggregates runs of the same metric columns: pass runs made with the same metrics (e.g. "
                             "all with --curves)")
    for i, run in enumerate(runs):
        for earlier in runs[:i]:
            if condition(run) != condition(earlier):
                continue
            a, b = (set(r.per_sample["sample_id"]) for r in (earlier, run))
            if a != b:
                raise UsageError(f"RUN_DIR {run.folder} and {earlier.folder} are runs of one condition "
                                 f"({condition(run)}) with different sample ids ({len(b)} and {len(a)}, {len(a & b)} "
                                 "shared): pass runs of the same samples (the same --limit and data), or rank them "
                                 "apart")


def title_of(runs: list[Run]) -> str:
    """ranking.md's title: the run's condition (and classifier), or the runs aggregated."""
    if len(runs) == 1:
        classifier = setting(runs[0], "classifier") or "cnn14"
        return condition(runs[0]) + (f" — classifier {classifier}" if classifier != "cnn14" else "")
    return f"{len(runs)} runs ({', '.join(f'{r.label}: {condition(r)}' for r in runs)})"


def write_rank(folders: list[str], out: str | None, seed: int | None) -> str:
    """Read and check the runs, rank them and write ``RANKING_FILES``: into the run's own folder for one run
    without ``out``, else into ``out`` (claimed as ``benchmark.output_folder.claim_folder``); return the Markdown.

    Raises:
        UsageError: as ``benchmark.rankings.read_run``, ``check_runs`` and ``aggregation.read_trust``.
        ValueError, FileExistsError: ``out`` is or lies in the committed results, or holds other files.
    """
    in_place = out is None and len(folders) == 1 or out is not None and len(folders) == 1 and \
        Path(out).expanduser().resolve() == Path(folders[0]).expanduser().resolve()
    target = Path(folders[0]) if in_place else Path(out or DEFAULT_OUT)
    if not in_place:
        check_location(target, [("the repository's committed results", f) for f in committed_results()])
        check_contents(target, set(RANKING_FILES), set())  # both again by claim_folder, before anything is written
    runs = read_runs(folders)
    check_runs(runs)
    ranked = [RankedRun(f"{r.label} ({r.folder})", r.per_sample, read_trust(r.folder)) for r in runs]
    seed = int(setting(runs[0], "seed") or 0) if seed is None else seed
    ranking = aggregate(ranked, seed)
    if not in_place:
        claim_folder(target, set(RANKING_FILES))
    return write_ranking(target, ranking, title_of(runs))


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py rank``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py rank",
        description="The aggregated ranking of the methods (LATEC, Klein et al., NeurIPS 2024): per domain, each "
                    "method's rank on each metric by its median over the samples, the mean rank per category "
                    "(faithfulness, complexity, localisation, robustness), overall and over the metrics a trust.csv "
                    "accepts, with paired bootstrap intervals over samples, the frequency of each overall rank, and "
                    "Levene's test of the metrics' agreement against random ranks. One RUN_DIR: (re)writes "
                    "ranking.csv and ranking.md into it; several (conditions, classifiers, seeds): one ranking by "
                    "the mean of their per-run ranks, into --out.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="finished run folders (per_sample.csv and run.json); runs of one condition must hold "
                             "the same sample ids, and all the same metric columns")
    parser.add_argument("--out", default=None,
                        help=f"output folder (default: the run's own folder for one RUN_DIR, {DEFAULT_OUT} for "
                             "several)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the bootstrap (default: the seed in the first run's run.json)")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py rank RUN_DIR ...``: ``write_rank``."""
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be a non-negative integer")
    if args.out is not None:
        check_writable_folder(args.out, "--out")
    return write_rank(args.run_dirs, args.out, args.seed)
