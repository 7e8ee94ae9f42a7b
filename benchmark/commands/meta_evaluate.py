"""``run_benchmark.py meta-evaluate``: the meta-evaluation of every metric after MetaQuantus (Hedström et al.,
TMLR 2023; ``benchmark.meta_evaluation``, docs/meta-evaluation.md) and the trust table.

Prepares as a run does (``benchmark.preparation.prepare``: the classifier and the trained interpreters, shipped,
cached or trained), then per domain, repetition and batch of evaluation samples: every method explains and
every metric scores the unperturbed batch (once) and the batch under the four perturbations of the repetition
(input and model, resilience and adversary), with the run's explanation and scoring (``explain``, ``score``).
The interpreters (L-MAC, L2I) are kept as trained and read the perturbed classifier's representations; the
explained class is the one the perturbed condition's classifier predicts (protocol §2).

Writes to ``--out``: ``meta_scores.csv`` (every score of every condition), ``meta_evaluation.csv`` and ``.md``
(the criteria, MC and the verdicts per domain × metric × test), ``meta_evaluation.png``, ``trust.csv`` and
``.md`` (per domain × metric: accepted, the agreement with the ground truth of ``--agreement``, resilient,
reactive, MC) and ``meta_evaluation.json`` (configuration, versions, models, times). Each file is written to a
temporary name and moved over the earlier one.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tqdm import tqdm

from benchmark.arguments import UsageError, config_from_args
from benchmark.config import RunConfig, condition_name
from benchmark.explanations import explain, score
from benchmark.meta_evaluation import (
    CRITERIA,
    DEFAULT_NOISE,
    INPUT_STREAM,
    LEVELS,
    TESTS,
    criteria_of_draws,
    directed_metrics,
    perturb_weights,
    perturbed_features,
    read_agreement,
    summarise,
    trust_table,
)
from benchmark.options import add_common_options
from benchmark.output_folder import claim_folder
from benchmark.pipeline import EvaluationBatch, batch_ids, prepare_batch, sample_rows, sample_seed
from benchmark.preparation import prepare
from classifiers.base import DomainModel
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from foundation.precision import autocast
from foundation.profiles import default_profile
from foundation.provenance import versions
from methods import available_methods
from methods.base import Explainer

FILES = ("meta_scores.csv", "meta_evaluation.csv", "meta_evaluation.md", "meta_evaluation.png", "trust.csv",
         "trust.md", "meta_evaluation.json")
"""What ``meta-evaluate`` writes to ``--out``."""


def noise_levels(text: str, test: str) -> tuple[float, float]:
    """``--input-noise`` / ``--model-noise`` (``test`` "input" / "model") "NR,AR" → (resilience, adversary), both
    positive and finite, NR < AR.

    Raises:
        UsageError: another form, a level ≤ 0, NaN or infinite, or NR ≥ AR.
    """
    flag = f"--{test}-noise"
    try:
        levels = tuple(float(v) for v in text.split(","))
    except ValueError:
        levels = ()
    example = ",".join(f"{v:g}" for v in DEFAULT_NOISE[test])
    if len(levels) != 2:
        raise UsageError(f"{flag} {text!r}: expected two numbers RESILIENCE,ADVERSARY, e.g. {example}")
    if not all(math.isfinite(v) and v > 0 for v in levels):
        raise UsageError(f"{flag} {text!r}: each level must be a positive finite number, e.g. {example}")
    if levels[0] >= levels[1]:
        raise UsageError(f"{flag} {text!r}: the resilience level must be below the adversary level, e.g. {example}")
    return levels


def heard(model: DomainModel, batch: EvaluationBatch, features: torch.Tensor) -> EvaluationBatch:
    """The batch with ``features`` (B, T, F) and ``model``'s one unmasked pass on them (logits, representations)."""
    with torch.no_grad():
        unmasked = model.hearing(batch.spec, batch.waves.shape[1]).forward_with_representations(features)
    return replace(batch, features=features, unmasked=unmasked)


def run_meta_evaluation(config: RunConfig, repetitions: int, noise: dict[str, tuple[float, float]],
                        agreement: pd.DataFrame | None, agreement_path: str | None = None) -> str:
    """Score every condition, compute the criteria and write ``FILES`` (module doc); return trust.md's text.

    Args:
        repetitions: K ≥ 1 draws of each perturbation; noise: {"input": (NR, AR), "model": (NR, AR)} levels
            (``perturbed_features``, ``perturb_weights``); agreement: ``read_agreement``'s table, or None.
    Raises:
        as ``benchmark.commands.sanity.run_sanity`` (bad input: exit code 2).
    """
    started = time.time()
    torch.manual_seed(config.seed)
    record = {"config": asdict(config), "repetitions": repetitions, "noise": noise, "agreement": agreement_path,
              "versions": {**versions(), "scipy": scipy.__version__}}
    claim_folder(Path(config.out), set(FILES))
    inputs, classifier, explainers = prepare(config, record)
    evaluation, device = inputs.evaluation, torch.device(config.device)
    prepared = time.time()
    batches = batch_ids(len(evaluation.samples), config.batch_size)
    rows, seconds, counted = [], defaultdict(float), defaultdict(int)

    def scored(model: DomainModel, batch: EvaluationBatch, todo: list[Explainer], test: str, level: str,
               repetition: int) -> None:
        for explainer in todo:
            tic = time.perf_counter()
            explanation = explain(model, explainer, batch, config.seed)
            curve_seeds = [sample_seed(config.seed, i, stream=1) for i in batch.ids] if config.curves else None
            values = score(model, explanation, batch, config.ad_softmax_twice, curve_seeds)
            seconds[explainer.label] += time.perf_counter() - tic
            counted[explainer.label] += len(batch.ids)
            rows.extend({"test": test, "level": level, "repetition": repetition, **row} for row in
                        sample_rows(evaluation, batch, model.domain.name, explainer.label, values))

    progress = tqdm(total=len(config.domains) * repetitions * len(batches), desc="meta-evaluate", unit="batch")
    for domain in config.domains:
        def domain_model(c):
            return DomainModel(c, DOMAINS[domain], per_sample=device.type == "cpu").eval()

        model = domain_model(classifier)
        todo = [e for e in explainers if domain in e.domains]
        for k in range(repetitions):
            weight_seed = int(np.random.SeedSequence([config.seed, k]).generate_state(1)[0])
            perturbed = {level: domain_model(perturb_weights(classifier, sigma, weight_seed))
                         for level, sigma in zip(LEVELS, noise["model"])}
            for ids in batches:
                with autocast(device, config.precision):
                    batch = prepare_batch(model, evaluation, ids, device)
                    if k == 0:
                        scored(model, batch, todo, "none", "none", 0)
                    seeds = [sample_seed(config.seed, i, stream=INPUT_STREAM + k) for i in ids]
                    for level, epsilon in zip(LEVELS, noise["input"]):
                        scored(model, heard(model, batch, perturbed_features(batch.features, epsilon, seeds)), todo,
                               "input", level, k)
                    for level, noisy in perturbed.items():
                        scored(noisy, heard(noisy, batch, batch.features), todo, "model", level, k)
                progress.update()
    progress.close()

    scores = pd.DataFrame(rows)
    draws = criteria_of_draws(scores)
    summary = summarise(draws)
    trust = trust_table(draws, summary, agreement)
    _, undirected = directed_metrics(scores)
    cost = {method: round(s / counted[method], 4) for method, s in seconds.items()}
    notes = [
        (f"input perturbation test: Gaussian noise of {noise['input'][0]:g} (resilience) and "
         f"{noise['input'][1]:g} (adversary) × each sample's standard deviation on the features; model "
         f"perturbation test: every parameter of the {classifier.name} classifier × (1 + σ·N(0, 1)), σ = "
         f"{noise['model'][0]:g} and {noise['model'][1]:g}; {repetitions} draws of each"),
        ("IAC: per method the two-sided Wilcoxon signed-rank p of the unperturbed vs the perturbed scores (NR: p, AR: "
         "1 − p, mean over the methods); IEC_NR: share of rank positions of the methods kept per sample; IEC_AR: share "
         "of scores made worse; NR on the samples whose prediction was kept, AR on those whose prediction changed "
         "(kept, changed: mean counts); MC = mean of the four per draw, ± its SD over the draws (MetaQuantus)"),
        ("resilient: most Wilcoxon tests keep equality under NR and IEC_NR ≥ (1 + 1/M)/2; reactive: most tests "
         "reject equality under AR and IEC_AR ≥ 3/4 (M methods; docs/meta-evaluation.md)"),
        *([f"not meta-evaluated (no direction): {', '.join(undirected)}"] if undirected else []),
        f"methods: {', '.join(e.label for e in explainers)}",
        f"{len(evaluation.samples)} samples ({condition_name(config)}); split: {inputs.data.split.protocol}",
        f"profile: {config.profile}, seed {config.seed}",
        "cost, seconds per sample and condition (explain + score): " + ", ".join(f"{m} {s:g}" for m, s in cost.items()),
    ]
    title = f"{config.dataset} — {condition_name(config)} — classifier {classifier.name}"
    trust_notes = [
        "accepted = resilient and reactive (in both tests) and not disagreeing with the ground truth",
        (f"agrees_with_truth: from {agreement_path} (Kendall τ of the methods' ranking with Loc-AUC and Cue-prec; "
         "disagrees if an interval lies below 0, agrees if all lie above 0)" if agreement is not None else
         "agrees_with_truth: not measured (pass --agreement RUN/agreement.csv of a run on --dataset controlled)"),
        "MC: mean over the draws of the mean of the input and model tests' MC (MetaQuantus's MC̄), ± SD over the draws",
    ]
    record["cost_s_per_sample_and_condition"] = cost
    record["wall_time_s"] = {"prepare": round(prepared - started, 1), "meta_evaluate": round(time.time() - prepared, 1)}
    markdown = tables_markdown(summary, trust, title, notes, trust_notes)
    out = Path(config.out)
    write_then_replace(out / "meta_scores.csv", lambda path: scores.to_csv(path, index=False))
    write_then_replace(out / "meta_evaluation.csv", lambda path: summary.to_csv(path, index=False))
    write_then_replace(out / "meta_evaluation.md", lambda path: path.write_text(markdown[0]))
    write_then_replace(out / "meta_evaluation.png", lambda path: plot(summary, title).savefig(path, format="png",
                                                                                             dpi=110))
    write_then_replace(out / "trust.csv", lambda path: trust.to_csv(path, index=False))
    write_then_replace(out / "trust.md", lambda path: path.write_text(markdown[1]))
    write_then_replace(out / "meta_evaluation.json",
                       lambda path: path.write_text(json.dumps(record, indent=1, default=str)))
    return markdown[1]


def tables_markdown(summary: pd.DataFrame, trust: pd.DataFrame, title: str, notes: list[str],
                    trust_notes: list[str]) -> tuple[str, str]:
    """The Markdown of meta_evaluation.md (criteria per domain × metric × test, 2 decimals) and of trust.md."""
    def number(value: float) -> str:
        return "n/a" if pd.isna(value) else f"{value:.2f}"

    shown = summary.assign(domain=[DOMAINS[d].label for d in summary["domain"]],
                           **{c: [number(v) for v in summary[c]] for c in CRITERIA},
                           MC=[f"{number(m)} ± {number(s)}" for m, s in zip(summary["MC"], summary["MC_sd"])],
                           kept=summary["kept"].round(1), changed=summary["changed"].round(1))
    columns = ["domain", "metric", "test", *CRITERIA, "MC", "resilient", "reactive", "kept", "changed"]
    meta = "\n".join([f"## Meta-evaluation of the metrics — {title}", "",
                      shown[columns].to_markdown(index=False, disable_numparse=True), "",
                      *[f"- {note}" for note in notes], ""])
    trusted = trust.assign(domain=[DOMAINS[d].label for d in trust["domain"]],
                           MC=[f"{number(m)} ± {number(s)}" for m, s in zip(trust["MC"], trust["MC_sd"])])
    columns = ["domain", "metric", "accepted", "agrees_with_truth", "resilient", "reactive", "MC", "agreement"]
    text = "\n".join([f"## Trust table — {title}", "", trusted[columns].to_markdown(index=False, disable_numparse=True),
                      "", *[f"- {note}" for note in trust_notes], ""])
    return meta, text


def plot(summary: pd.DataFrame, title: str) -> Figure:
    """One panel per domain (rows) and test (columns): the four criteria per metric as bars, MC as a dot with its SD."""
    domains = list(dict.fromkeys(summary["domain"]))
    figure = Figure(figsize=(13, 3.6 * len(domains)), layout="constrained")
    FigureCanvasAgg(figure)
    panels = np.atleast_2d(figure.subplots(len(domains), len(TESTS), squeeze=False))
    for row, domain in enumerate(domains):
        for column, test in enumerate(TESTS):
            axes, part = panels[row, column], summary[(summary["domain"] == domain) & (summary["test"] == test)]
            x = np.arange(len(part))
            for k, criterion in enumerate(CRITERIA):
                axes.bar(x + (k - 1.5) * 0.2, part[criterion], 0.2, label=criterion)
            axes.errorbar(x, part["MC"], yerr=part["MC_sd"], fmt="o", color="black", label="MC ± SD")
            axes.set_xticks(x, part["metric"], rotation=30, ha="right")
            axes.set_ylim(0, 1.05)
            axes.set_title(f"{DOMAINS[domain].label} — {test} perturbation test")
            axes.grid(axis="y", alpha=0.3)
    figure.legend(*panels[0, 0].get_legend_handles_labels(), loc="outside right upper", fontsize=8)
    figure.suptitle(f"Meta-evaluation (MetaQuantus criteria; 1 is ideal) — {title}")
    return figure


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py meta-evaluate``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py meta-evaluate",
        description="Meta-evaluation of every metric with a direction after MetaQuantus (Hedström et al., TMLR 2023; "
                    "docs/meta-evaluation.md): input and model perturbation tests at a resilience and an adversary "
                    "level, every method explained and every metric scored again per draw; intra- and "
                    "inter-consistency, the MC score and its spread, and a trust table joined with the ground-truth "
                    "agreement (--agreement). Writes meta_scores.csv, meta_evaluation.csv, meta_evaluation.md, "
                    "meta_evaluation.png, trust.csv, trust.md and meta_evaluation.json to --out (default "
                    "results/runs/meta-evaluation-<profile>).")
    parser.add_argument("--methods", default="saliency,gradcam,lmac",
                        help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())}). "
                             "Default: saliency,gradcam,lmac")
    parser.add_argument("--controls", default="all-ones,random,energy",
                        help="control rows added to --methods (ranked with them); 'none' for none. Default: all three")
    parser.add_argument("--limit", type=int, default=10,
                        help="evaluation clips (default 10: 20 samples of the ood condition); the Wilcoxon test "
                             "needs at least 6 samples kept or changed to reject at 0.05")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated domains: listenable and/or the classifier's own. Default: listenable")
    parser.add_argument("--setting", default="ood", choices=["id", "ood", "clean"],
                        help="the evaluated condition, as a run's --setting (default ood; clean for --dataset "
                             "controlled, as its agreement.csv)")
    parser.add_argument("--contamination", default="mixtures", choices=["mixtures", "speech", "white_noise"],
                        help="ood contaminant, as a run's --contamination. Default: mixtures")
    parser.add_argument("--speech-dir", help="folder of speech recordings for --contamination speech")
    parser.add_argument("--curves", action="store_true",
                        help="also score the deletion and insertion areas (Ins-AUC, Del-AUC; 12 more passes per "
                             "map); always on with --dataset controlled")
    parser.add_argument("--repetitions", type=int, default=5,
                        help="K, draws of each perturbation (default 5); MC's spread is over them")
    for test, what in (("input", "σ of the Gaussian noise on the features, × each sample's own σ"),
                       ("model", "σ of the multiplicative Gaussian noise on every classifier parameter")):
        parser.add_argument(f"--{test}-noise", default=",".join(f"{v:g}" for v in DEFAULT_NOISE[test]),
                            help=f"RESILIENCE,ADVERSARY levels of the {test} perturbation test: {what} "
                                 f"(default {','.join(f'{v:g}' for v in DEFAULT_NOISE[test])})")
    parser.add_argument("--agreement", metavar="AGREEMENT_CSV",
                        help="agreement.csv of a run on --dataset controlled (Kendall τ of each metric with the "
                             "ground truth), joined into trust.csv; without it agrees_with_truth is 'not measured'")
    add_common_options(parser)
    parser.set_defaults(save_audio=False, resume=False, ad_single_softmax=False, l2i_rth="0.2")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py meta-evaluate``: every option checked (exit code 2 before anything is written), then
    ``run_meta_evaluation``."""
    if args.repetitions < 1:
        raise UsageError(f"--repetitions {args.repetitions}: must be a positive integer")
    noise = {test: noise_levels(getattr(args, f"{test}_noise"), test) for test in TESTS}
    agreement = read_agreement(args.agreement) if args.agreement else None
    profile = args.profile or default_profile(args.device)
    args.out = args.out or os.path.join("results", "runs", f"meta-evaluation-{profile}")
    return run_meta_evaluation(config_from_args(args), args.repetitions, noise, agreement, args.agreement)
