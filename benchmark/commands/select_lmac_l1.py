"""Choosing a trainable method's setting on the training and validation parts only (never on evaluation samples).

``select_lmac_l1``: the CPU profile's L-MAC L1 weight λ_1. Rule, fixed before any
result was seen: train one decoder per grid value on the training part; explain OOD
mixtures of validation clips (each validation clip mixed, as §6, with two validation
clips of other classes); keep the largest λ_1 (the sparsest masks) whose mean
validation Fid-In is at least the all-ones mask's minus ``margin``. If none
qualifies, the smallest λ_1 of the grid.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd

from benchmark.arguments import UsageError, config_from_args, number_list
from benchmark.config import RunConfig
from benchmark.harness import evaluate
from benchmark.options import add_common_options
from benchmark.output_folder import claim_folder
from benchmark.pipeline import EvaluationSamples
from benchmark.preparation import prepare
from benchmark.store import ResultWriter
from datasets.contamination import draw_ood_mixtures
from methods import build_explainer

SUMMARY = ["Fid-In", "AI", "AG", "FF", "MM", "SPS"]


def select_lmac_l1(config: RunConfig, grid: list[float], margin: float) -> str:
    """Apply the rule of the module docstring; write ``selection.csv`` (one row per λ_1 and
    the all-ones row), ``selection.md`` and the per-sample rows ``validation_per_sample.csv``
    to ``config.out``, and return the Markdown.

    Args:
        config: the run configuration (data, profile, seed, cache); its methods are ignored.
        grid: λ_1 values (≥ 0), each trained once and cached as a run would train it.
        margin: allowed drop of mean validation Fid-In below the all-ones mask's (a fraction).
    Raises:
        as ``benchmark.harness.prepare``, before anything trains.
    """
    config = replace(config, methods=["lmac"], method_options={"lmac": {"lambda_l1": list(grid)}},
                     domains=["listenable"], setting="ood", contamination="mixtures", limit=None)
    claim_folder(Path(config.out), {"validation_per_sample.csv", "selection.csv", "selection.md"})
    inputs, classifier, explainers = prepare(config, {}, evaluation_part=False)
    valid = inputs.data.split.valid
    evaluation = EvaluationSamples(draw_ood_mixtures(valid, valid, seed=config.seed), inputs.valid_waves,
                                   dict(zip(valid["filename"], inputs.valid_waves)), valid["target"].tolist(),
                                   config.peak_normalisation)
    out = Path(config.out)
    rows = out / "validation_per_sample.csv"
    rows.unlink(missing_ok=True)
    evaluate(config, classifier, [*explainers, build_explainer("all-ones")], evaluation, ResultWriter(rows), out)
    per_sample = pd.read_csv(rows)
    table = per_sample.groupby("method", sort=False)[SUMMARY].mean()
    table["n"] = per_sample.groupby("method", sort=False).size()
    table.insert(0, "lambda_l1", [e.hyperparameters["lambda_l1"] for e in explainers] + [None])
    floor = table.loc["all-ones", "Fid-In"] - margin
    eligible = table[(table["lambda_l1"].notna()) & (table["Fid-In"] >= floor)]
    chosen = float(eligible["lambda_l1"].max()) if len(eligible) else float(min(grid))
    table["chosen"] = table["lambda_l1"] == chosen
    table.to_csv(out / "selection.csv")
    markdown = "\n".join([
        f"## L-MAC λ_1 chosen on the validation part: {chosen:g}", "",
        table.reset_index().to_markdown(index=False, floatfmt=".3f"), "",
        f"- rule: the largest λ_1 whose mean validation Fid-In ≥ all-ones' − {margin:g} "
        f"(= {floor:.3f}); none qualifying: the smallest",
        f"- validation samples: {len(evaluation.samples)} OOD mixtures of {len(valid)} validation clips with other "
        "validation clips (0.8/0.2); the evaluation part is not read",
        f"- profile {config.profile}, seed {config.seed}; {inputs.data.split.protocol}", ""])
    (out / "selection.md").write_text(markdown)
    return markdown


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py select-lmac-l1``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py select-lmac-l1",
        description="Choose L-MAC's L1 weight λ_1 on the training and validation parts only: train one decoder "
                    "per --grid value (cached, as a run would), explain OOD mixtures of validation clips with "
                    "each, and pick the largest λ_1 whose validation Fid-In stays within --margin of the all-ones "
                    "mask's. Writes selection.csv and selection.md to --out (default "
                    "results/runs/lmac-l1-selection-<profile>). The evaluation part is never read.")
    parser.add_argument("--grid", default="0.4,0.8,1.6,3.2", help="λ_1 values to train (default 0.4,0.8,1.6,3.2: "
                                                                  "the paper's 0.4 × 1, 2, 4, 8)")
    parser.add_argument("--margin", type=float, default=0.2,
                        help="largest allowed drop of validation Fid-In below the all-ones mask's (default 0.2)")
    add_common_options(parser)
    parser.set_defaults(setting="ood", contamination="mixtures", speech_dir=None, l2i_rth="0.2", methods="lmac",
                        domains="listenable", limit=None, batch_size=16, save_audio=False,
                        ad_single_softmax=False, resume=False)
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py select-lmac-l1``: ``select_lmac_l1`` with the parsed options."""
    args.out = args.out or os.path.join("results", "runs", f"lmac-l1-selection-{args.profile or 'cpu'}")
    if not 0 <= args.margin <= 1:
        raise UsageError(f"--margin {args.margin}: a drop of Fid-In, must be in [0, 1]")
    return select_lmac_l1(config_from_args(args), number_list(args.grid, "--grid", 0.0, float("inf")), args.margin)
