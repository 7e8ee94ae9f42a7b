"""Speed of the evaluation harness on real clips: ``python run_benchmark.py bench``.

For each method the harness's own ``evaluate`` explains and scores the condition's
samples (the first ``--limit`` evaluation clips) with the same models, twice:

- batched (``--batch-size``), as a benchmark run does;
- the per-sample loop: the same harness one sample at a time.

It reports, each timing the fastest of ``--repeats`` runs after an untimed warm-up:

- samples/s of the batched harness for a run with that method alone;
- model passes: wall time inside the classifier (``DomainModel.forward`` and
  ``forward_with_representations``: STFT→Mel, CNN14, head), inside the ``forward`` of
  the method's own networks (L-MAC's decoder) and inside every backward pass
  (``torch.autograd.grad``, ``Tensor.backward``), measured in the same run, and the
  inputs that went through CNN14 per sample;
- overhead = 1 − model passes / total: everything else (mixing, STFT, features,
  the method's non-model work, masks, metrics, per-sample rows), and × floor = total
  / model passes; "own overhead" leaves out the per-batch work a run shares between
  its methods (mixing, STFT, features, BCE-clean target, ideal binary mask, the unmasked pass: first row);
- with curves: samples/s of the same run with ``--curves`` (deletion and insertion curves, 12
  more classifier passes per map) and its cost, total with / total without;
- for L-MAC, bf16: samples/s of the same run with ``--precision bf16`` (autocast), its speed-up
  over fp32 and the largest per-sample metric change against the fp32 run on the same samples;
- for L-MAC, × L-MAC floor: total / (one decoder and three classifier passes per
  sample, timed on their own in the same run);
- peak memory: resident memory of the process (CPU, sampled every 5 ms) or peak CUDA
  memory allocated, while the method ran;
- the per-sample loop's samples/s, the batched speed-up, and the largest absolute
  difference of a per-sample metric between the two.

Models are the run's (trained or loaded from the cache, ``--classifier-checkpoint``,
``--lmac-checkpoint``); ``--paper-size`` benchmarks seeded paper-size SpeechBrain
checkpoints (CNN14 width 64, decoder dim 2048) written to the cache.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from benchmark.arguments import UsageError, config_from_args
from benchmark.commands.timing import ModelPassTimer, PeakMemory
from benchmark.config import RunConfig
from benchmark.harness import evaluate
from benchmark.options import OOD_MIXTURES_NOT_SAVED, add_common_options
from benchmark.output_folder import claim_folder
from benchmark.pipeline import batch_ids, prepare_batch
from benchmark.preparation import prepare
from benchmark.speechbrain_import import speechbrain_paper_checkpoints
from benchmark.store import ResultWriter
from classifiers.base import Classifier, DomainModel
from datasets.sources import open_dataset
from foundation.checkpoints import default_cache_dir
from foundation.frontend import DOMAINS, apply_mask
from foundation.profiles import default_profile
from metrics import reported_metrics


def _timed(config: RunConfig, classifier: Classifier, networks: list[nn.Module], work, repeats: int) -> dict:
    """The fastest of ``repeats`` runs of ``work()``: total and model-pass seconds, peak memory."""
    device = torch.device(config.device)
    best = None
    for _ in range(repeats):
        with ModelPassTimer(networks, device, type(classifier)) as timer, PeakMemory(device) as memory:
            start = time.perf_counter()
            work()
            if device.type == "cuda":
                torch.cuda.synchronize()
            total = time.perf_counter() - start
        if best is None or total < best["total_s"]:
            best = {"total_s": total, "model_s": timer.seconds, "peak_mib": memory.peak_mib,
                    "classifier_samples": timer.classifier_samples}
    return best


def _measure(config: RunConfig, classifier, explainer, evaluation, batch_size: int, folder: Path,
             repeats: int) -> dict:
    """Evaluate ``explainer`` on all samples at ``batch_size`` with the harness (after one
    untimed warm-up batch); the fastest of ``repeats`` runs, and the per-sample rows."""
    config = replace(config, batch_size=batch_size)
    variant = ("-curves" if config.curves else "") + ("-bf16" if config.precision == "bf16" else "")
    csv = folder / f"{explainer.label.replace(' ', '_')}-batch{batch_size}{variant}.csv"
    networks = [m for v in vars(explainer).values() for m in (v.values() if isinstance(v, dict) else [v])
                if isinstance(m, nn.Module)]  # e.g. L-MAC's decoders, one per domain
    head = replace(evaluation, samples=evaluation.samples[:batch_size])
    evaluate(config, classifier, [explainer], head, ResultWriter(folder / "warm-up.csv"), folder)
    (folder / "warm-up.csv").unlink()

    def work():
        csv.unlink(missing_ok=True)
        evaluate(config, classifier, [explainer], evaluation, ResultWriter(csv), folder)

    return {**_timed(config, classifier, networks, work, repeats), "rows": pd.read_csv(csv)}


def _measure_shared(config: RunConfig, classifier, evaluation, repeats: int) -> dict:
    """The per-batch work all methods share (``prepare_batch``: mixing, STFT, features,
    BCE-clean target, ideal binary mask, the unmasked pass), over all samples and domains."""
    device = torch.device(config.device)
    batches = batch_ids(len(evaluation.samples), config.batch_size)
    models = [DomainModel(classifier, DOMAINS[name], per_sample=device.type == "cpu").eval()
              for name in config.domains]

    def work():
        for model in models:
            for batch in batches:
                prepare_batch(model, evaluation, batch, device)

    work()  # warm-up
    return _timed(config, classifier, [], work, repeats)


def _lmac_floor(config: RunConfig, classifier, explainer, evaluation, repeats: int) -> float:
    """Seconds of L-MAC's model-pass floor on all samples, timed in the same run: per
    sample its mask (one classifier pass for the representations, one decoder pass) and
    the two classifier passes M⊙X and (1−M)⊙X, nothing else, on the features of the
    listenable domain computed beforehand."""
    device = torch.device(config.device)
    model = DomainModel(classifier, DOMAINS["listenable"], per_sample=device.type == "cpu").eval()
    batches = [prepare_batch(model, evaluation, ids, device)
               for ids in batch_ids(len(evaluation.samples), config.batch_size)]
    step = 1 if model.per_sample or model.needs_phase else config.batch_size
    inputs = [(model.hearing(batch.spec[k:k + step], batch.waves.shape[1]), batch.features[k:k + step])
              for batch in batches for k in range(0, len(batch.ids), step)]

    def work():
        with torch.no_grad():
            for heard, x in inputs:
                mask = explainer.attribute(heard, x, None)  # no representations given: a pass of its own
                for masked in apply_mask(x, mask):
                    heard(masked)

    work()  # warm-up
    return _timed(config, classifier, [], work, repeats)["total_s"]


def bf16_support() -> str:
    """What this CPU offers for bfloat16 (its /proc/cpuinfo flags avx512_bf16, amx_bf16), or "none found"."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next(line for line in lines if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    found = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    return ", ".join(found) or "none found"


def max_metric_difference(first: pd.DataFrame, second: pd.DataFrame) -> float:
    """Largest |difference| of a per-sample metric between two runs (NaN in both counts as equal)."""
    key = ["domain", "sample_id"]
    merged = first.merge(second, on=key, suffixes=("", "_other"))
    if len(merged) != len(first) or len(merged) != len(second):
        raise ValueError("the two runs did not evaluate the same samples")
    columns = [c for c in reported_metrics() if c in first]
    a, b = merged[columns].to_numpy(float), merged[[f"{c}_other" for c in columns]].to_numpy(float)
    difference = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
    return float(np.nan_to_num(difference, nan=np.inf).max())


def run_bench(config: RunConfig, per_sample_methods: list[str], repeats: int = 3) -> str:
    """Benchmark every method of ``config`` (see the module docstring); write bench.csv and
    bench.md to ``config.out`` (the per-sample rows of both loops under ``per_sample/``) and
    return the Markdown table.

    ``per_sample_methods``: the methods also run in the per-sample loop ("all" for every one);
    ``repeats``: each timing is the fastest of this many runs.
    """
    out = Path(config.out)
    claim_folder(out, {"bench.csv", "bench.md", "per_sample"})
    folder = out / "per_sample"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    inputs, classifier, explainers = prepare(config, {})
    evaluation = inputs.evaluation
    explainers = [e for e in explainers if set(e.domains) & set(config.domains)]
    count = len(evaluation.samples) * len(config.domains)
    shared = _measure_shared(config, classifier, evaluation, repeats)
    rows = [{"method": "(shared per batch)", "samples/s": count / shared["total_s"],
             "model passes s": shared["model_s"], "total s": shared["total_s"],
             "overhead %": 100 * (1 - shared["model_s"] / shared["total_s"]),
             "× floor": shared["total_s"] / shared["model_s"], "peak MiB": shared["peak_mib"]}]
    for explainer in explainers:
        count = len(evaluation.samples) * len(set(explainer.domains) & set(config.domains))
        batched = _measure(config, classifier, explainer, evaluation, config.batch_size, folder, repeats)
        own_total, own_model = batched["total_s"] - shared["total_s"], batched["model_s"] - shared["model_s"]
        row = {"method": explainer.label, "samples/s": count / batched["total_s"],
               "model passes s": batched["model_s"], "total s": batched["total_s"],
               "overhead %": 100 * (1 - batched["model_s"] / batched["total_s"]),
               "× floor": batched["total_s"] / batched["model_s"], "peak MiB": batched["peak_mib"],
               "own overhead %": 100 * (1 - own_model / own_total),
               "classifier passes / sample": batched["classifier_samples"] / count}
        with_curves = _measure(replace(config, curves=True), classifier, explainer, evaluation, config.batch_size,
                               folder, repeats)
        row.update({"with curves samples/s": count / with_curves["total_s"],
                    "curves cost ×": with_curves["total_s"] / batched["total_s"]})
        if "listenable" in getattr(explainer, "decoders", {}):
            bf16 = _measure(replace(config, precision="bf16"), classifier, explainer, evaluation, config.batch_size,
                            folder, repeats)
            row.update({"bf16 samples/s": count / bf16["total_s"],
                        "bf16 speed-up ×": batched["total_s"] / bf16["total_s"],
                        "bf16 max |Δ metric|": max_metric_difference(batched["rows"], bf16["rows"])})
            row["× L-MAC floor"] = batched["total_s"] / _lmac_floor(config, classifier, explainer, evaluation, repeats)
        if "all" in per_sample_methods or explainer.name in per_sample_methods:
            single = _measure(config, classifier, explainer, evaluation, 1, folder, repeats)
            row.update({"per-sample samples/s": count / single["total_s"],
                        "batched speed-up ×": single["total_s"] / batched["total_s"],
                        "max |Δ metric|": max_metric_difference(batched["rows"], single["rows"])})
        rows.append(row)
        print(f"{explainer.label}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "method"))
    table = pd.DataFrame(rows)
    table.to_csv(out / "bench.csv", index=False)
    decoders = "".join(f"; {e.label} {domain} decoder {sum(p.numel() for p in decoder.parameters()) / 1e6:.2f} M "
                       "parameters" for e in explainers for domain, decoder in getattr(e, "decoders", {}).items())
    lines = [
        f"# Harness speed: {config.dataset}, {len(evaluation.samples)} samples × {', '.join(config.domains)}",
        "",
        table.to_markdown(index=False, floatfmt=".4g"),
        "",
        f"- batch size {config.batch_size}; device {config.device}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}); torch {torch.__version__}; "
        f"fastest of {repeats} runs",
        f"- classifier {', '.join(f'{k} {v}' for k, v in classifier.describe().items())}{decoders}",
        "- model passes: time inside the classifier (its features and network), the method's networks and backward "
        "passes; overhead = the rest (mixing, STFT, features, masks, metrics, rows); × floor = total / model passes",
        "- a method's row is a run with that method alone, including the shared per-batch work (first row: mixing, "
        "STFT, features, BCE-clean target, ideal binary mask, unmasked pass), which a run does once for all its "
        "methods; own "
        "overhead % leaves that shared work out",
        "- classifier passes / sample: inputs through the classifier per sample (the unmasked pass is shared: L-MAC "
        "needs 3); "
        "× L-MAC floor: total / (one decoder and three classifier passes per sample, timed alone in the same run)",
        "- bf16 (L-MAC): the same run with --precision bf16 (autocast; the CPU's bfloat16 support: "
        f"{bf16_support()}); speed-up = fp32 total / bf16 total; max |Δ metric| against the fp32 run's per-sample "
        "metrics on the same samples",
        "- with curves: the same run with --curves (deletion and insertion curves: 12 more classifier passes per "
        "map); curves cost × = its total / the total without",
        "- per-sample: the same harness one sample at a time; max |Δ metric| over AI, AD, AG, FF, Fid-In, SPS, "
        "COMP, MM, BCE-clean, Loc-AUC, Loc-mass",
    ]
    markdown = "\n".join(lines) + "\n"
    (out / "bench.md").write_text(markdown)
    return markdown


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py bench``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py bench",
        description="Speed of the harness on real clips: per method samples/s, time in model passes vs the rest "
                    "(harness overhead), peak memory, and the batched harness against a per-sample loop with the "
                    "same models (speed-up, largest per-sample metric difference). Writes bench.csv and bench.md "
                    "to --out (default results/runs/bench-<profile>).")
    parser.add_argument("--methods", default="saliency,smoothgrad,integrated-gradients,guided-backprop,shap,"
                                             "gradcam,guided-gradcam,lmac,all-ones",
                        help="comma-separated explainers, or 'all' (default: all but the trained l2i and lmac-ft)")
    parser.add_argument("--per-sample-methods", default="saliency,gradcam,lmac,all-ones",
                        help="methods also timed in the per-sample loop, or 'all' (default: the cheap ones)")
    parser.add_argument("--limit", type=int, default=16,
                        help="evaluation clips (default 16: 32 samples of the ood condition)")
    parser.add_argument("--batch-size", type=int, default=16, help="batch size of the harness (default 16)")
    parser.add_argument("--domains", default="listenable", help="domains: listenable and/or mel")
    parser.add_argument("--repeats", type=int, default=3, help="each timing is the fastest of this many runs")
    parser.add_argument("--paper-size", action="store_true",
                        help="use seeded paper-size SpeechBrain checkpoints (CNN14 width 64, L-MAC decoder dim "
                             "2048), written to the cache on first use, as --classifier-checkpoint and "
                             "--lmac-checkpoint")
    add_common_options(parser)
    parser.set_defaults(**OOD_MIXTURES_NOT_SAVED)
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py bench``: ``run_bench`` with the parsed options."""
    if args.paper_size:
        cache_dir = Path(args.cache_dir or default_cache_dir())
        data = open_dataset(args.dataset, args.data_root, args.seed, args.folds, cache_dir=cache_dir)
        classes = len(data.class_names)
        folder = cache_dir / f"speechbrain-paper-size-{classes}-classes"
        speechbrain_paper_checkpoints(folder, classes)
        args.classifier_checkpoint, args.lmac_checkpoint = str(folder), str(folder / "psi_model.ckpt")
    if args.repeats < 1:
        raise UsageError(f"--repeats {args.repeats}: must be a positive integer")
    name = "bench-paper-size" if args.paper_size else f"bench-{args.profile or default_profile(args.device)}"
    args.out = args.out or os.path.join("results", "runs", name)
    return run_bench(config_from_args(args), [m.strip() for m in args.per_sample_methods.split(",")], args.repeats)
