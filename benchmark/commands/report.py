"""``build_report``: a finished run as a static HTML folder, ``RUN_DIR/report/``.

``index.html`` shows the run's table (the best value of each metric marked per domain
block) and a gallery of a few evaluated samples: the input and, for every method of the
listenable domain, its listenable interpretation (audio) and its mask over the log1p
magnitude spectrogram (PNG), with the sample's metrics from ``per_sample.csv``.
``listening.html`` is a MUSHRA-style listening test on the same samples, run in the
browser: the paper's two user-study questions, each method's interpretation and the
hidden reference under neutral letters, and a button that saves the ratings as CSV.

The folder is self-contained: inline CSS and JavaScript, media under ``report/audio``
and ``report/images`` referenced by relative paths, no network; it opens from file://.
HTML comes from the Jinja2 templates in ``benchmark/commands/templates``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jinja2 import Environment, FileSystemLoader
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

from benchmark.arguments import UsageError, import_user_module
from benchmark.commands.listening_results import COLUMNS, QUESTIONS, REFERENCE
from benchmark.config import RunConfig
from benchmark.explanations import explain
from benchmark.pipeline import prepare_batch
from benchmark.preparation import prepare
from benchmark.run_identity import model_identity
from benchmark.tables import cell_text, is_marked
from classifiers.base import DomainModel
from datasets.audio import write_audio
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS, spectrogram_extent
from metrics import arrow, paper_columns, table_columns

TEMPLATES = Path(__file__).resolve().parent / "templates"
RUN_FILES = ("per_sample.csv", "table.csv", "table.md", "run.json")


def load_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str], RunConfig, dict]:
    """Read a finished run folder.

    Returns:
        per_sample.csv, table.csv, the title of table.md (dataset — condition — classifier
        accuracy, n), the notes under that table, the run's ``RunConfig`` and the whole run.json.
    Raises:
        ValueError: a file of ``RUN_FILES`` is missing (the run never finished there), or a CSV
            lacks a column the report reads.
    """
    for name in RUN_FILES:
        if not (run_dir / name).is_file():
            raise ValueError(f"{run_dir / name} is missing: {run_dir} is not a finished run folder; "
                             "run run_benchmark.py with --out pointing there first")
    lines = (run_dir / "table.md").read_text(encoding="utf-8").splitlines()
    record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    known = {f.name for f in fields(RunConfig)}
    config = RunConfig(**{k: v for k, v in record["config"].items() if k in known})
    notes = [line[2:] for line in lines if line.startswith("- ")]
    per_sample, table = pd.read_csv(run_dir / "per_sample.csv"), pd.read_csv(run_dir / "table.csv")
    for frame, name, columns in ((per_sample, "per_sample.csv", [
                                     "sample_id", "clip", "contamination", "contaminant", "label", "predicted",
                                     "confidence", "domain", "method", *paper_columns()]),
                                 (table, "table.csv", ["domain", "method", "n"])):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"{run_dir / name} lacks the column(s) {', '.join(missing)}: it was not written by a "
                             f"finished run; run run_benchmark.py with --out {run_dir} again")
    return per_sample, table, lines[0].removeprefix("## "), notes, config, record


def select_samples(per_sample: pd.DataFrame, count: int, seed: int) -> list[int]:
    """``count`` evaluated sample ids spread over the true classes, sorted.

    The ids are grouped by their ``label``; the class order and each class's ids are
    shuffled by a NumPy generator seeded with ``seed``, then one id per class is taken
    round-robin until ``count`` (all ids if there are fewer). The same run and seed
    always give the same ids.

    Raises:
        ValueError: ``count`` < 1.
    """
    if count < 1:
        raise ValueError(f"samples {count}: must be a positive integer")
    rng = np.random.default_rng(seed)
    by_label = per_sample.drop_duplicates("sample_id").groupby("label")["sample_id"].apply(sorted)
    queues = [list(rng.permutation(by_label[label])) for label in rng.permutation(sorted(by_label.index))]
    chosen = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(int(queue.pop(0)))
    return sorted(chosen)


def condition_order(methods: list[str], seed: int, sample_id: int) -> list[str]:
    """The listening test's conditions of one sample, ``methods`` + ``REFERENCE``, in the order
    shown as A, B, C, …: a permutation seeded by (``seed``, ``sample_id``)."""
    conditions = [*methods, REFERENCE]
    return [conditions[k] for k in np.random.default_rng([seed, sample_id]).permutation(len(conditions))]


def media_file(sample_id: int, what: str, kind: str) -> str:
    """The path inside report/ of a sample's medium, ``what`` = "input" or a method's label (spaces → _):
    kind "audio" → ``audio/0007-lmac.wav``, kind "image" → ``images/0007-lmac.png``."""
    stem = f"{sample_id:04d}-{what.replace(' ', '_')}"
    return f"audio/{stem}.wav" if kind == "audio" else f"images/{stem}.png"


def blind_copy(report: Path, sample_id: int, condition: str, seed: int) -> str:
    """The path inside report/ of a listening-test condition's audio under a neutral name,
    ``listening/<12 hex digits of SHA-256(seed, sample, condition)>.wav``: a copy of the
    method's interpretation (the input for the hidden reference), made if missing, so that
    neither the file name nor a shared source gives the condition away."""
    source = media_file(sample_id, "input" if condition == REFERENCE else condition, "audio")
    name = f"listening/{hashlib.sha256(f'{seed}/{sample_id}/{condition}'.encode()).hexdigest()[:12]}.wav"
    if not (report / name).exists():
        (report / name).parent.mkdir(parents=True, exist_ok=True)
        write_then_replace(report / name, lambda part: shutil.copyfile(report / source, part))
    return name


def save_spectrogram(path: Path, features: np.ndarray, mask: np.ndarray | None = None) -> None:
    """A small PNG (350 × 168 px, 128-colour palette, ≤ 60 KB) of a log1p magnitude spectrogram,
    seconds × kHz, drawn with matplotlib's Agg canvas (no pyplot) and quantised with Pillow.

    Args:
        features: (T, 513) log1p|STFT| of the input, ≥ 0.
        mask: (T_m, 513) in [0, 1], T_m ≤ T (the frames past T_m count as 0, as in the
            listenable interpretation), drawn as a coloured overlay whose opacity is the
            mask; None for the plain spectrogram (grey).
    """
    frames, bins = features.shape
    extent = spectrogram_extent(frames, bins)
    figure = Figure(figsize=(5, 2.4), dpi=70)
    axis = figure.add_subplot()
    axis.imshow(features.T, origin="lower", aspect="auto", cmap="gray", extent=extent)
    if mask is not None:
        full = np.zeros_like(features)
        full[: mask.shape[0]] = mask
        axis.imshow(full.T, origin="lower", aspect="auto", cmap="autumn", vmin=0, vmax=1,
                    alpha=0.8 * full.T, extent=extent)
    axis.set(xlabel="time (s)", ylabel="frequency (kHz)")
    figure.tight_layout(pad=0.3)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    path.parent.mkdir(parents=True, exist_ok=True)
    picture = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]).quantize(128)
    write_then_replace(path, lambda part: picture.save(part, format="png", optimize=True))


def media_paths(report: Path, sample_id: int, methods: list[str]) -> list[Path]:
    """Every medium of a sample: input WAV and PNG, then each method's WAV and PNG."""
    return [report / media_file(sample_id, what, kind) for what in ["input", *methods] for kind in ("audio", "image")]


def write_media(report: Path, config: RunConfig, ids: list[int], methods: list[str],
                models: dict[str, str] | None) -> list[str]:
    """Write the missing media of samples ``ids`` and return the dataset's class names.

    Rebuilds the classifier and explainers as the run did (``prepare``: the shipped models or the checkpoint
    cache ``config.cache_dir``; with ``models``, the run's file name → SHA-256, each must be found with exactly
    those bytes and nothing trains, else ``CheckpointError``), recomputes the
    samples' waveforms and, in the listenable domain, each method's mask with the run's
    per-sample seeds (``pipeline.explain``; on CPU the masks are the run's). Writes
    ``audio/<id>-input.wav``, ``audio/<id>-<method>.wav`` (listenable interpretation:
    ISTFT of the masked magnitude with the input's phase), ``images/<id>-input.png`` and
    ``images/<id>-<method>.png``; a file that exists is kept. With ``ids`` empty it only
    returns the class names.
    """
    for module in config.imports:
        import_user_module(module)
    torch.manual_seed(config.seed)
    inputs, classifier, explainers = prepare(config, {}, expected_models=models)
    if not ids:
        return inputs.data.class_names
    device = torch.device(config.device)
    model = DomainModel(classifier, DOMAINS["listenable"], per_sample=device.type == "cpu").eval()
    batch = prepare_batch(model, inputs.evaluation, ids, device)
    outputs = {"input": (batch.waves, None)}
    for explainer in explainers:
        if explainer.label in methods:
            explanation = explain(model, explainer, batch, config.seed)
            outputs[explainer.label] = (explanation.listenable(batch).detach(), explanation.mask.detach())
    features = batch.features.detach().cpu().numpy()
    for what, (waves, masks) in outputs.items():
        for k, sample_id in enumerate(ids):
            audio, image = report / media_file(sample_id, what, "audio"), report / media_file(sample_id, what, "image")
            if not audio.exists():
                write_then_replace(audio, lambda part: write_audio(part, waves[k]))
            if not image.exists():
                save_spectrogram(image, features[k], None if masks is None else masks[k].cpu().numpy())
    return inputs.data.class_names


def table_rows(table: pd.DataFrame) -> list[dict]:
    """The rows of table.csv for the template: domain, method, n and one cell per table column
    (``tables.cell_text``: mean ± CI half-width, "n/a" for none; ``best``: the table's mark, the best
    method of the column in its domain or not significantly worse than it, ``tables.is_marked``)."""
    columns = [m for m in table_columns() if m in table]
    rows = []
    for k, row in enumerate(table.to_dict("records")):
        cells = [{"text": cell_text(row, m), "best": is_marked(row, m)} for m in columns]
        rows.append({"domain": row["domain"], "method": row["method"], "n": int(row["n"]), "cells": cells,
                     "first": k == 0 or table["domain"][k - 1] != row["domain"]})
    return rows


def build_report(run_dir: Path, samples: int = 12, seed: int | None = None) -> Path:
    """Build ``run_dir/report/`` (index.html, listening.html, audio/, images/) for a finished run.

    Args:
        run_dir: a run's ``--out`` folder (per_sample.csv, table.csv, table.md, run.json).
        samples: how many evaluated samples the gallery and the listening test show
            (spread over the true classes, ``select_samples``).
        seed: seeds the sample selection and the listening test's condition orders;
            default the run's ``--seed``.
    Returns:
        the path of ``run_dir/report/index.html``.
    The media are computed once (``write_media``); a later build keeps the files it finds and
    rebuilds only the pages. Class names come from run.json's ``class_names`` when it has them,
    else from the dataset that ``prepare`` opens (then the data and cache are read even when
    every medium exists). The models must be the run's: each is checked against the SHA-256 that run.json
    records (``write_media``), and none is trained.

    Raises:
        ValueError: not a finished run folder, or ``samples`` < 1.
        Whatever ``prepare`` raises when the run's data or checkpoint cache moved away.
    """
    run_dir = Path(run_dir)
    per_sample, table, title, notes, config, record = load_run(run_dir)
    seed = config.seed if seed is None else seed
    ids = select_samples(per_sample, samples, seed)
    listenable = DOMAINS["listenable"].label
    methods = table.loc[(table["domain"] == listenable) & (table["n"] > 0), "method"].tolist()
    report = run_dir / "report"
    missing = [i for i in ids if not all(p.exists() for p in media_paths(report, i, methods))]
    class_names = record.get("class_names")
    if missing or class_names is None:
        models = model_identity(record["models"]) if "models" in record else None
        try:
            class_names = write_media(report, config, missing, methods, models)
        except (OSError, ValueError) as error:  # its fix may name a run's option, which report does not take
            raise ValueError(f"{error} (report {run_dir} reads the data, cache and models that "
                             f"{run_dir / 'run.json'} records: restore them there; report takes no such "
                             "option)") from None

    def name(label: int) -> str:
        return class_names[label] if label >= 0 else "unlabelled"

    rows = per_sample[per_sample["domain"] == "listenable"].set_index(["sample_id", "method"])
    first = per_sample.drop_duplicates("sample_id").set_index("sample_id")
    cards = []
    for sample_id in ids:
        sample = first.loc[sample_id]
        cards.append({
            "id": sample_id, "clip": sample["clip"], "contamination": sample["contamination"],
            "contaminant": "" if pd.isna(sample["contaminant"]) else sample["contaminant"],
            "label": name(int(sample["label"])), "predicted": name(int(sample["predicted"])),
            "confidence": f"{sample['confidence']:.2f}",
            "audio": media_file(sample_id, "input", "audio"), "image": media_file(sample_id, "input", "image"),
            "methods": [{"label": method, "audio": media_file(sample_id, method, "audio"),
                         "image": media_file(sample_id, method, "image"),
                         "metrics": [(m, "n/a" if pd.isna(v) else f"{v:.2f}")
                                     for m, v in rows.loc[(sample_id, method), paper_columns()].items()]}
                        for method in methods],
            "conditions": [{"letter": chr(ord("A") + k), "name": condition,
                            "audio": blind_copy(report, sample_id, condition, seed)}
                           for k, condition in enumerate(condition_order(methods, seed, sample_id))],
        })
    environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True,
                              lstrip_blocks=True)
    report.mkdir(exist_ok=True)
    page = {"title": title, "run": run_dir.resolve().name, "config": config, "seed": seed, "samples": cards,
            "questions": QUESTIONS, "columns": COLUMNS}
    (report / "index.html").write_text(environment.get_template("report.html.j2").render(
        **page, headers=[f"{m} {arrow(m)}".strip() for m in table_columns() if m in table], rows=table_rows(table),
        notes=notes),
        encoding="utf-8")
    (report / "listening.html").write_text(environment.get_template("listening.html.j2").render(**page),
                                           encoding="utf-8")
    return report / "index.html"


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py report``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py report",
        description="Build RUN_DIR/report/: index.html (the run's tables, best value per column marked, and a "
                    "gallery of samples with each method's listenable interpretation, mask and metrics) and "
                    "listening.html (a MUSHRA-style listening test that saves the ratings as CSV in the browser). "
                    "Static and self-contained: open index.html from disk, offline. Missing WAVs and pictures "
                    "are computed once, with the run's models from the checkpoint cache.")
    parser.add_argument("run_dir", help="a finished run's folder (per_sample.csv, table.csv, run.json)")
    parser.add_argument("--samples", type=int, default=12,
                        help="samples in the gallery and the listening test, spread over classes (default 12)")
    parser.add_argument("--seed", type=int, help="seed of the sample choice and the order of the listening "
                                                 "test's conditions (default: the run's seed)")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py report RUN_DIR``: ``build_report`` with the parsed options."""
    if args.samples < 1:
        raise UsageError(f"--samples {args.samples}: must be a positive integer")
    return f"wrote {build_report(Path(args.run_dir), args.samples, args.seed)}"
