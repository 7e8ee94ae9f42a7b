"""The harness: it only orchestrates. ``run`` builds what a run needs (``benchmark.preparation``),
loops over domains and batches, sends each batch through the pipeline (``benchmark.pipeline``:
features and one classifier pass, then per method explain → mask → score → rows) and hands
the rows to the result store (``benchmark.store``), which replaces earlier results only when
the run has finished.
"""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from benchmark import agreement, summary, tables
from benchmark.aggregation_output import write_run_ranking
from benchmark.config import RunConfig, condition_name
from benchmark.explanations import explain, score
from benchmark.output_folder import FolderLock
from benchmark.pipeline import EvaluationBatch, EvaluationSamples, batch_ids, prepare_batch, sample_rows, sample_seed
from benchmark.preparation import load_inputs, prepare_models
from benchmark.reliance import MIN_ACCURACY, Reliance
from benchmark.robustness import robustness_draws, robustness_note
from benchmark.run_identity import data_identity, input_files, model_identity, run_settings
from benchmark.store import ResultWriter, RunStore
from classifiers.base import Classifier, DomainModel
from datasets.audio import CLIP_SAMPLES, PEAK_NORMALISATIONS, write_audio
from foundation import distributed
from foundation.checkpoints import config_key, describe_models
from foundation.frontend import DOMAINS
from foundation.precision import autocast
from foundation.provenance import versions
from methods.base import Explainer
from metrics import arrow, reported_metrics


def evaluate(config: RunConfig, classifier: Classifier, explainers: list[Explainer],
             evaluation: EvaluationSamples, writer: ResultWriter, out: Path,
             current: distributed.Ranks = distributed.Ranks()) -> None:
    """Explain and score every sample with every method in every domain of ``config.domains``.

    Works in batches of ``config.batch_size``: the waveforms, STFT, features and the
    unmasked classifier pass of a batch are computed once and shared by its methods;
    each mask is computed once and serves every metric and the audio writer. Rows go
    to ``writer`` as each method finishes a batch; batches already on disk are skipped.
    In a launch of several processes, ``current`` rank evaluates its share of the batches
    (``distributed.shard``). With ``config.precision`` "bf16" the model passes run under autocast
    (``foundation.precision``); inputs, masks and metrics stay float32 / float64.
    """
    device = torch.device(config.device)
    batches = distributed.shard(batch_ids(len(evaluation.samples), config.batch_size), current)
    progress = tqdm(total=len(batches) * len(config.domains), desc=f"evaluate (rank {current.rank})"
                    if current.world_size > 1 else "evaluate", unit="batch", position=current.rank)
    for domain in config.domains:
        model = DomainModel(classifier, DOMAINS[domain], per_sample=device.type == "cpu").eval()
        for ids in batches:
            progress.update()
            todo = [e for e in explainers if domain in e.domains and writer.missing(domain, e.label, ids)]
            if not todo:
                continue
            with autocast(device, config.precision):
                write_batch(config, model, todo, prepare_batch(model, evaluation, ids, device), evaluation, writer, out)
    progress.close()


def write_batch(config: RunConfig, model: DomainModel, explainers: list[Explainer], batch: EvaluationBatch,
                evaluation: EvaluationSamples, writer: ResultWriter, out: Path) -> None:
    """Explain and score one prepared batch with each of ``explainers`` and write their rows (and,
    with ``config.save_audio``, the listenable WAVs) — each mask computed once for all of it."""
    domain, ids = model.domain.name, batch.ids
    save_audio = config.save_audio and domain == "listenable"
    if save_audio:
        for k, i in enumerate(ids):
            write_audio(out / "audio" / f"{i:04d}-input.wav", batch.waves[k])
    for explainer in explainers:
        explanation = explain(model, explainer, batch, config.seed)
        if save_audio:
            for k, audio in enumerate(explanation.listenable(batch)):
                write_audio(out / "audio" / f"{ids[k]:04d}-{explainer.label.replace(' ', '_')}.wav", audio)
        curve_seeds = [sample_seed(config.seed, i, stream=1) for i in ids] if config.curves else None
        robustness = robustness_draws(model, explainer, batch, explanation, config.seed, config.robustness_draws,
                                      config.robustness_level, config.robustness_samples) if config.robustness else None
        scores = score(model, explanation, batch, config.ad_softmax_twice, curve_seeds, robustness)
        writer.write(sample_rows(evaluation, batch, domain, explainer.label, scores))


def run(config: RunConfig) -> str | None:
    """Run the benchmark end to end and return the Markdown table (None on the ranks other than 0).

    Checks and loads every input, trains (or loads from the cache) the classifier and
    the trainable explainers, evaluates every method × domain on the contaminated
    evaluation samples into ``OUT/unfinished/``, and only then replaces the results in
    ``config.out`` (per_sample.csv, table.csv, table.md, table.tex, figure.png, ranking.csv, ranking.md,
    summary.json, run.json;
    ``benchmark.store``).

    Launched by torchrun (``foundation.distributed``), the ranks train together (DDP) or load
    every model; each rank evaluates its share of the batches into its own row file; rank 0
    merges them, in a single process's order, and writes the tables.

    Raises:
        FileExistsError: ``config.out`` holds results of another configuration, or another run is
            using it (an exclusive lock, ``benchmark.output_folder.FolderLock``, held from the start).
        DatasetNotFoundError, FileNotFoundError, CheckpointError, AudioError, ValueError:
            bad input, reported before anything trains (the CLI exits with code 2).
    """
    current = distributed.ranks()
    lock = FolderLock(Path(config.out), "--out") if current.leader else None  # one run per output folder
    try:
        return _run(config, current)
    finally:
        if lock is not None:
            lock.release()


def _run(config: RunConfig, current: distributed.Ranks) -> str | None:
    """``run``'s work, with ``config.out`` locked by rank 0."""
    started = time.time()
    torch.manual_seed(config.seed)
    settings = run_settings(config)
    store = RunStore(Path(config.out), settings, config.limit, config.resume)  # refused before anything is read
    record = {"config_key": config_key(settings), "config": asdict(config), "versions": versions(),
              "world_size": current.world_size}
    inputs = load_inputs(config)
    evaluation = inputs.evaluation
    data = data_identity(input_files(inputs.data, evaluation, config.noise_dir), inputs.data.root, {
        "train": inputs.train_key, "valid": inputs.valid_key, "noise": inputs.noise_key,
        "evaluation labels": config_key(inputs.data.split.evaluation["target"].tolist())}, Path(config.cache_dir))
    store.check_data(data)  # before anything trains
    classifier, explainers = prepare_models(config, inputs, record, store.expected_models())  # every rank
    models = model_identity(record["models"])
    record["class_names"] = inputs.data.class_names
    record["evaluated_clips"] = len({s.base_index for s in evaluation.samples})
    record["evaluated_samples"] = len(evaluation.samples)
    if current.leader:
        store.start(record, {"settings": settings, "limit": config.limit, "data": data, "models": models},
                    config.save_audio)
    distributed.barrier(current)
    prepared = time.time()
    evaluate(config, classifier, explainers, evaluation, store.writer(current.rank, current.world_size), store.work,
             current)
    distributed.barrier(current)
    if not current.leader:
        return None
    store.merge_rows(config.domains, [e.label for e in explainers], config.batch_size)

    rows = [(d, e.label) for d in config.domains for e in explainers]
    ad_note = ("AD with softmax applied twice, as the published code" if config.ad_softmax_twice
               else "AD with a single softmax")
    title = f"{config.dataset} — {condition_name(config)}" + (  # CNN14, the paper's classifier, goes unnamed
        f" — classifier {classifier.name}" if config.classifier != "cnn14" else "")
    hyperparameters = [f"{e.label}: " + ", ".join(f"{k}={v}" for k, v in e.hyperparameters.items())
                       for e in explainers if e.hyperparameters]
    metrics = "; ".join(f"{m.name} {arrow(m.name)}: {m.description}".replace(" :", ":")
                        for m in reported_metrics().values() if config.robustness or not m.needs_robustness)
    controls = {e.label for e in explainers if e.control}
    markdown = tables.write_tables(store.work, rows, title, [
        ad_note, f"peak normalisation: {PEAK_NORMALISATIONS[config.peak_normalisation]}", f"metrics: {metrics}",
        f"split: {inputs.data.split.protocol}", f"parts: {inputs.data.split.summary()}",
        describe_models(record["models"]), f"profile: {config.profile}, seed {config.seed}"
        + (f", training seed {config.training_seed}" if config.training_seed is not None else ""), *hyperparameters,
        *([robustness_note(config.robustness_draws, config.robustness_level, config.robustness_samples)]
          if config.robustness else []),
        *(note for e in explainers for note in e.notes()),
        *([f"listenable rows: the {classifier.name} classifier takes waveforms, so it hears the inverse STFT of the "
           "masked log1p|STFT| with the input's phase (what a listener hears), not the STFT→Mel wrapper"]
          if "listenable" in config.domains and DomainModel(classifier, DOMAINS["listenable"]).needs_phase else []),
        *([f"left out of --methods all: {', '.join(record['left_out'])} (the {classifier.name} classifier does not "
           "give what they need)"] if record["left_out"] else []),
        *[f"reliance on the cue (clean evaluation clips; ≥ {100 * MIN_ACCURACY:.0f} % with the cue and with only the "
          f"cue, not above chance without it): {Reliance(**r).text()}" for r in record.get("reliance", [])],
        *([f"mel rows: masks on the {DomainModel(classifier, DOMAINS['mel']).grid(CLIP_SAMPLES)[1]}-band mel grid "
           "are not listenable; no WAV is written for them"] if "mel" in config.domains else []),
        *(["waveform rows: masks on the samples in 20 ms frames (the model's own input) are not listenable; no WAV "
           "is written for them"] if "waveform" in config.domains else [])],
        controls, config.seed)
    if config.dataset == "controlled":
        agreement.write_agreement(store.work, pd.read_csv(store.work / "per_sample.csv"), title, config.seed)
    write_run_ranking(store.work, config.seed, title)  # ranking.csv, ranking.md beside the tables (docs/ranking.md)
    summary.write_summary(store.work)  # from the tables and run.json just written (docs/leaderboard.md)
    record["wall_time_s"] = {"prepare": round(prepared - started, 1), "evaluate": round(time.time() - prepared, 1)}
    store.finish(record)
    return markdown
