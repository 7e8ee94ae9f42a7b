"""Sanity check: cascading model-parameter randomisation (Adebayo et al., 2018; paper §4.4).

The classifier's parameter groups are re-initialised from the top, one more per level, as its
contract lists them (``Classifier.randomisation_levels``; CNN14: conv block 6 first, one more block
per level, and at the last level the head too). At every level each
method explains the same samples again, for the class the *trained* classifier predicts, with
the trained interpreters (L2I, L-MAC, LMAC-TD, PIQ) kept fixed: they read the randomised classifier's
representations. The randomised masks are compared with the trained model's (level 0,
"original") per sample by Spearman rank correlation and SSIM. A method whose maps depend
on the model decorrelates as more of it is randomised; one that stays similar explains
the input, not the model.

As the authors' code (``eval.py``, flags ``mrt``, ``mrt_layer``): Xavier-uniform weights,
biases 0.01, BatchNorm untouched, constant maps not scored. A map that collapses to a
constant (max == min) has no ranks and no structure: Quantus and Xplique score it as
identical to the original, a known pitfall (Binder et al., 2023; Hedström et al., 2024).
Here it gets NaN similarities and ``constant_map`` True, and the tables count such maps.

``run_sanity`` writes to ``config.out``: ``sanity.csv`` (per sample), ``sanity_table.csv`` and
``sanity.md`` (means per method × level), ``sanity.png`` (the curves) and ``sanity.json``
(configuration, versions, what was trained or loaded). Each file is written to a temporary
name and moved over the earlier one, so a run that fails leaves earlier results as they were.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import scipy
import skimage
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn
from torch.nn.utils import parametrize
from tqdm import tqdm

from benchmark.arguments import config_from_args
from benchmark.config import RunConfig, condition_name
from benchmark.explanations import explain
from benchmark.options import OOD_MIXTURES_NOT_SAVED, add_common_options
from benchmark.output_folder import claim_folder
from benchmark.pipeline import batch_ids, prepare_batch
from benchmark.preparation import prepare
from classifiers.base import Classifier, ClassifierPass, DomainModel
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from foundation.profiles import default_profile
from foundation.provenance import versions
from methods import available_methods

SANITY_FILES = ("sanity.csv", "sanity_table.csv", "sanity.md", "sanity.png", "sanity.json")
"""What ``sanity`` writes to ``--out``."""
BIAS = 0.01
"""Value of every re-initialised bias (the authors' code)."""


def level_names(classifier: Classifier) -> list[str]:
    """Names of levels 0 … L: "original" (the trained classifier), then the classifier's cumulative
    levels (``Classifier.randomisation_levels``; CNN14: "block 6", "blocks 6–5", …, "blocks 6–1 + head")."""
    return ["original", *(name for name, _ in classifier.randomisation_levels())]


def randomised_copy(classifier: Classifier, level: int, seed: int) -> Classifier:
    """A deep copy of ``classifier`` with its top ``level`` parameter groups re-initialised; the original
    is untouched.

    The groups, top-down, are the classifier's ``randomisation_levels`` (CNN14: conv blocks 6, 5, 4, 3,
    2, 1, then the head). In each re-initialised group every ``Conv1d`` / ``Conv2d`` / ``Linear`` / ``Embedding``
    weight (a weight-normed one through its parametrisation) is drawn
    Xavier-uniform from one CPU generator seeded with ``seed`` (so the draws do not depend on the
    device, and the top group gets the same weights at every level) and every bias is set to 0.01;
    normalisation layers (BatchNorm, LayerNorm) and their statistics are kept.

    Args:
        classifier: the trained classifier (not modified).
        level: 0 (an unchanged copy) … L, the number of the classifier's levels.
        seed: seed of the random weights.
    Raises:
        ValueError: ``level`` outside 0 … L.
    """
    levels = classifier.randomisation_levels()
    if not 0 <= level <= len(levels):
        raise ValueError(f"randomisation level {level}: expected 0 … {len(levels)}")
    randomised = copy.deepcopy(classifier)
    parts = [module for _, modules in randomised.randomisation_levels()[:level] for module in modules]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for part in parts:
            for module in part.modules():
                if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear, nn.Embedding)):
                    weight = torch.empty(module.weight.shape)
                    nn.init.xavier_uniform_(weight, generator=generator)
                    if parametrize.is_parametrized(module, "weight"):  # weight norm (wav2vec2's positional conv)
                        module.weight = weight  # through its right inverse
                    else:
                        module.weight.copy_(weight)
                    if getattr(module, "bias", None) is not None:
                        module.bias.fill_(BIAS)
    return randomised


def map_similarity(original: np.ndarray, randomised: np.ndarray) -> tuple[float, float, bool]:
    """Spearman rank correlation and SSIM between two masks of one sample.

    Args:
        original, randomised: (T_m, F) masks in [0, 1] (converted to float64).
    Returns:
        (spearman in [−1, 1], SSIM in [−1, 1], constant_map). If either map is constant
        (max == min) it is not scored: (NaN, NaN, True) — not 1, as Quantus and Xplique
        would score it (Binder et al., 2023; Hedström et al., 2024).
    Raises:
        ValueError: the maps differ in shape.
    """
    original, randomised = np.asarray(original, np.float64), np.asarray(randomised, np.float64)
    if original.shape != randomised.shape:
        raise ValueError(f"maps of shapes {original.shape} and {randomised.shape}; expected the same grid")
    if original.max() == original.min() or randomised.max() == randomised.min():
        return math.nan, math.nan, True
    spearman = spearmanr(original.ravel(), randomised.ravel()).statistic
    ssim = structural_similarity(original, randomised, data_range=1.0)
    return float(spearman), float(ssim), False


def summarise(per_sample: pd.DataFrame) -> pd.DataFrame:
    """Per domain × method × level: mean Spearman and mean SSIM over the scored samples, n
    (scored samples) and constant_maps (unscored samples). Rows: domains and methods in their
    order of first appearance in ``per_sample``, levels 0 … 7 within each method."""
    groups = per_sample.groupby(["domain", "method", "level", "level_name"], sort=False)
    table = groups[["spearman", "ssim"]].mean()
    table["n"] = groups["spearman"].count()
    table["constant_maps"] = groups["constant_map"].sum().astype(int)
    first_seen = {column: {v: i for i, v in enumerate(per_sample[column].unique())} for column in ("domain", "method")}
    return table.reset_index().sort_values(
        ["domain", "method", "level"], key=lambda c: c.map(first_seen[c.name]) if c.name in first_seen else c,
        kind="stable", ignore_index=True)


def to_markdown(table: pd.DataFrame, title: str, notes: list[str]) -> str:
    """The table in Markdown (3 decimals, "n/a" where no sample was scored), notes below."""
    shown = table.copy()
    for column in ("spearman", "ssim"):
        shown[column] = ["n/a" if pd.isna(v) else f"{v:.3f}" for v in table[column]]
    shown = shown.rename(columns={"spearman": "Spearman", "ssim": "SSIM"})
    body = shown.to_markdown(index=False, disable_numparse=True)
    return "\n".join([f"## {title}", "", body, "", *[f"- {note}" for note in notes], ""])


def plot(table: pd.DataFrame, names: list[str]) -> Figure:
    """Mean Spearman (left) and mean SSIM (right) against the level (``names``: of levels 0 … L), one line
    per method (and domain)."""
    figure = Figure(figsize=(12, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    several_domains = table["domain"].nunique() > 1
    for axes, column, name in zip(figure.subplots(1, 2), ("spearman", "ssim"), ("Spearman rank correlation", "SSIM")):
        for (domain, method), rows in table.groupby(["domain", "method"], sort=False):
            label = f"{method} ({domain})" if several_domains else method
            axes.plot(rows["level"], rows[column], marker="o", label=label)
        axes.set_xticks(range(len(names)), names, rotation=30, ha="right")
        axes.set_xlabel("randomised (cascading, from the top)")
        axes.set_ylabel(f"mean {name}")
        axes.set_ylim(top=1.05)
        axes.axhline(0, color="grey", linewidth=0.5)
        axes.grid(alpha=0.3)
    axes.legend()
    figure.suptitle("Model-parameter randomisation: similarity of each method's masks to the trained model's")
    return figure


def run_sanity(config: RunConfig) -> str:
    """Run the cascading randomisation check and return the Markdown table (module docstring).

    Prepares as a run does (``benchmark.preparation.prepare``: the classifier and the trained
    interpreters from the cache, or trained), then per domain and batch of evaluation samples:
    the trained model's pass gives the explained class, and every method explains the batch at
    every level 0 … 7 with the same per-sample seeds (``pipeline.explain``). Holds one batch's
    level-0 masks and the 8 classifier copies in memory.

    Raises:
        DatasetNotFoundError, FileNotFoundError, CheckpointError, AudioError, ValueError:
            bad input, reported before anything trains (the CLI exits with code 2).
        InvalidExplanationError: a method returned an invalid map.
    """
    started = time.time()
    torch.manual_seed(config.seed)
    record = {"config": asdict(config),
              "versions": {**versions(), "scipy": scipy.__version__, "scikit-image": skimage.__version__,
                           "matplotlib": matplotlib.__version__}}
    claim_folder(Path(config.out), set(SANITY_FILES))
    inputs, classifier, explainers = prepare(config, record)
    evaluation = inputs.evaluation
    prepared = time.time()
    device = torch.device(config.device)
    names = level_names(classifier)
    classifiers = [randomised_copy(classifier, level, config.seed).eval() for level in range(len(names))]
    batches = batch_ids(len(evaluation.samples), config.batch_size)
    rows = []
    progress = tqdm(total=len(config.domains) * len(batches), desc="sanity", unit="batch")
    for domain in config.domains:
        models = [DomainModel(c, DOMAINS[domain], per_sample=device.type == "cpu").eval() for c in classifiers]
        todo = [e for e in explainers if domain in e.domains]
        for ids in batches:
            batch = prepare_batch(models[0], evaluation, ids, device)
            originals = {}
            for level, model in enumerate(models):
                with torch.no_grad():
                    randomised = model.hearing(batch.spec, batch.waves.shape[1]).forward_with_representations(
                        batch.features)
                # Only the model changes: the explained class stays the one the trained classifier
                # predicts (its logits), the interpreters read the randomised model's representations.
                level_batch = replace(batch, unmasked=ClassifierPass(batch.unmasked.logits,
                                                                     randomised.representations))
                for explainer in todo:
                    masks = explain(model, explainer, level_batch, config.seed).mask.cpu().double().numpy()
                    originals.setdefault(explainer.label, masks)
                    for k, i in enumerate(ids):
                        spearman, ssim, constant = map_similarity(originals[explainer.label][k], masks[k])
                        rows.append({"domain": domain, "method": explainer.label, "level": level,
                                     "level_name": names[level], "sample_id": i, "spearman": spearman,
                                     "ssim": ssim, "constant_map": constant})
            progress.update()
    progress.close()

    per_sample = pd.DataFrame(rows)
    table = summarise(per_sample)
    notes = [
        (f"cascading randomisation from the top (Adebayo et al., 2018) of the {classifier.name} classifier: level k "
         f"re-initialises its top k parameter groups ({' → '.join(names[1:])}; Xavier-uniform weights, biases 0.01, "
         "normalisation layers kept)"),
        ("explained class: the trained classifier's prediction at every level; the trained interpreters (L2I, L-MAC, "
         "LMAC-TD, PIQ) are kept and read the randomised classifier's representations"),
        ("Spearman rank correlation and SSIM (data range 1) of each mask with the trained model's; mean over the "
         "scored samples (n); a faithful method decorrelates as more of the model is randomised"),
        ("constant_maps: samples where either map is constant (max = min), not scored (Quantus and Xplique would "
         "score them as identical; Binder et al., 2023; Hedström et al., 2024)"),
        f"{len(evaluation.samples)} samples ({condition_name(config)}); split: {inputs.data.split.protocol}",
        f"profile: {config.profile}, seed {config.seed}",
    ]
    markdown = to_markdown(table, f"Sanity check: model-parameter randomisation — {config.dataset}", notes)
    record["levels"] = names
    record["evaluated_samples"] = len(evaluation.samples)
    record["wall_time_s"] = {"prepare": round(prepared - started, 1), "sanity": round(time.time() - prepared, 1)}

    out = Path(config.out)
    write_then_replace(out / "sanity.csv", lambda path: per_sample.to_csv(path, index=False))
    write_then_replace(out / "sanity_table.csv", lambda path: table.to_csv(path, index=False))
    write_then_replace(out / "sanity.md", lambda path: path.write_text(markdown))
    write_then_replace(out / "sanity.png", lambda path: plot(table, names).savefig(path, format="png", dpi=120))
    write_then_replace(out / "sanity.json", lambda path: path.write_text(json.dumps(record, indent=1, default=str)))
    return markdown

# The paper's five (§4.4) and the methods the field compares; Feature Ablation's map equals Occlusion's.
DEFAULT_METHODS = "saliency,integrated-gradients,gradcam,l2i,lmac,lmac-td,piq,occlusion,lime,kernel-shap"


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py sanity``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py sanity",
        description="Sanity check by cascading model-parameter randomisation (Adebayo et al. 2018; "
                    "docs/protocol.md §8): re-initialise the classifier's parameter groups from the top (CNN14: "
                    "block 6, then 6-5, ..., 6-1, then the head too), explain the OOD mixtures again with each "
                    "method (trained interpreters kept fixed, the trained classifier's class explained) and "
                    "compare each mask with the trained model's by Spearman rank correlation and SSIM; constant "
                    "maps are counted, not scored. Writes sanity.csv, sanity_table.csv, sanity.md, sanity.png "
                    "and sanity.json to --out (default results/runs/sanity-<profile>).")
    parser.add_argument("--methods", default=DEFAULT_METHODS,
                        help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())})")
    parser.add_argument("--limit", type=int, default=20,
                        help="evaluation clips (default 20: 40 samples of the ood condition)")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated domains: listenable and/or mel. Default: listenable")
    add_common_options(parser)
    parser.set_defaults(**OOD_MIXTURES_NOT_SAVED)
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py sanity``: ``run_sanity`` with the parsed options."""
    profile = args.profile or default_profile(args.device)
    args.out = args.out or os.path.join("results", "runs", f"sanity-{profile}")
    return run_sanity(config_from_args(args))
