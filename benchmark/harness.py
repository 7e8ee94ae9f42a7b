"""The evaluation harness: clip → contamination → features → prediction → mask → metrics → rows.

One function per arrow (DESIGN.md). Per-sample rows are appended to
``per_sample.csv`` as each batch finishes; a rerun with the same configuration
skips the rows already on disk, and the tables are rebuilt from the CSV.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import captum
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from benchmark import tables
from benchmark.checkpoints import cached_training, config_key
from benchmark.classifier import AudioClassifier, DomainModel
from benchmark.frontend import DOMAINS, stft
from benchmark.profiles import PROFILES
from benchmark.training import accuracy, mel_features, train_classifier
from datasets.audio import load_clip
from datasets.contamination import ContaminatedSample, draw_ood_mixtures
from datasets.esc50 import class_names, load_metadata, make_split, resolve_data_root
from methods import build_explainers
from methods.base import Explainer, TrainingResources
from metrics import faithfulness_scores, structure_scores

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in run.json).

    methods: registry names; imports: user modules registering more methods; method_options: per-method constructor keywords;
    domains: "listenable" and/or "mel"; limit: evaluate only the first N base clips;
    ad_softmax_twice: AD as in the published code (True) or single softmax.
    """

    dataset: str = "esc50"
    setting: str = "ood"
    data_root: str | None = None
    noise_dir: str | None = None
    methods: list[str] = field(default_factory=lambda: ["saliency", "lmac", "all-ones"])
    imports: list[str] = field(default_factory=list)
    method_options: dict[str, dict] = field(default_factory=dict)
    domains: list[str] = field(default_factory=lambda: ["listenable"])
    profile: str = "cpu"
    limit: int | None = None
    out: str = "results/esc50-ood-cpu"
    cache_dir: str = ""
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 16
    ad_softmax_twice: bool = True

    def identity(self) -> dict:
        """The settings that define the results (not where or how fast they are computed)."""
        return {k: v for k, v in asdict(self).items() if k not in {"limit", "out", "cache_dir", "device", "batch_size"}}


def load_waveforms(audio_dir: Path, filenames: list[str]) -> torch.Tensor:
    """(N, 80000) waveforms of ``audio_dir/filename`` (mono, 16 kHz, 5 s, peak 1)."""
    return torch.stack([load_clip(audio_dir / name) for name in tqdm(filenames, desc="load audio", unit="clip", leave=False)])


def noise_files(noise_dir: str | os.PathLike) -> list[Path]:
    """Audio files in ``noise_dir`` (recursively), sorted.

    Raises:
        FileNotFoundError: missing folder, or no wav/flac/ogg file in it.
    """
    folder = Path(noise_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"noise folder {folder} does not exist; pass --noise-dir with a folder of noise recordings")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"noise folder {folder} holds no .wav/.flac/.ogg file; pass --noise-dir with noise recordings")
    return files


def draw_noise(evaluation: pd.DataFrame, files: list[Path], seed: int) -> list[ContaminatedSample]:
    """ID setting (§6): one noise clip per base clip at 0 dB (gains 1, 1), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(files), size=len(evaluation))
    return [ContaminatedSample(i, name, files[j].name, 1.0, 1.0, "noise")
            for i, (name, j) in enumerate(zip(evaluation["filename"], picks))]


class ResultWriter:
    """Appends per-sample rows to ``per_sample.csv`` and knows which are already there."""

    def __init__(self, path: Path):
        self.path = path
        self.done: set[tuple[str, str, int]] = set()
        if path.exists():
            existing = pd.read_csv(path, usecols=["setting", "method", "sample_id"])
            self.done = set(zip(existing["setting"], existing["method"], existing["sample_id"]))

    def missing(self, setting: str, method: str, sample_ids: list[int]) -> bool:
        return any((setting, method, i) not in self.done for i in sample_ids)

    def write(self, rows: list[dict]) -> None:
        """Append the rows not yet on disk (a batch interrupted half-way is completed, not duplicated)."""
        frame = pd.DataFrame([r for r in rows if (r["setting"], r["method"], r["sample_id"]) not in self.done])
        if frame.empty:
            return
        frame.to_csv(self.path, mode="a", header=not self.path.exists(), index=False)
        self.done.update(zip(frame["setting"], frame["method"], frame["sample_id"]))


def evaluate_batch(model: DomainModel, explainer: Explainer, features: torch.Tensor, logits: torch.Tensor,
                   ad_softmax_twice: bool) -> dict[str, torch.Tensor]:
    """Mask of ``explainer`` for the predicted classes and all metrics, each (B,) (§5).

    Three forward passes: p (given as ``logits``), p_in on M⊙X and p_out on (1−M)⊙X,
    with X cropped to the mask's frames.
    """
    target = logits.argmax(1)
    mask = explainer.mask(model, features, target)
    cropped = features[:, : mask.shape[1]]
    with torch.no_grad():
        logits_in = model(mask * cropped)
        logits_out = model((1 - mask) * cropped)
    scores = faithfulness_scores(logits, logits_in, logits_out, target, ad_softmax_twice=ad_softmax_twice)
    scores.update(structure_scores(mask))
    return scores


def versions() -> dict[str, str]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "captum": captum.__version__, "numpy": np.__version__, "pandas": pd.__version__}


def prepare_output(config: RunConfig) -> tuple[Path, dict]:
    """Create the output directory; reuse it (resume) only for the same configuration.

    Raises:
        FileExistsError: the directory holds results of another configuration.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run_json = out / "run.json"
    identity = config_key(config.identity())
    if (out / "per_sample.csv").exists():
        previous = json.loads(run_json.read_text()) if run_json.exists() else {}
        if previous.get("config_key") != identity:
            raise FileExistsError(
                f"{out} holds results of another configuration; pass another --out or delete {out / 'per_sample.csv'}")
    return out, {"config_key": identity, "config": asdict(config), "versions": versions()}


def run(config: RunConfig) -> str:
    """Run the benchmark end to end and return the Markdown table.

    Trains (or loads from the cache) the classifier and the trainable explainers,
    evaluates every method × setting on the contaminated evaluation samples and
    writes per_sample.csv, table.csv, table.md and run.json to ``config.out``.

    Raises:
        DatasetNotFoundError: no ESC-50 at the data root (the CLI exits with code 2).
        FileNotFoundError, AudioError: missing noise folder, unreadable audio.
    """
    started = time.time()
    device = torch.device(config.device)
    torch.manual_seed(config.seed)
    profile = PROFILES[config.profile]
    out, record = prepare_output(config)

    root = resolve_data_root(config.data_root)
    meta = load_metadata(root)
    split = make_split(meta, seed=config.seed)
    print(f"data: {root}\nsplit: {split.protocol}")
    record["data_root"] = str(root)
    record["split"] = split.describe()
    names = class_names(meta)
    audio_dir = root / "audio"

    train_waves = load_waveforms(audio_dir, split.train["filename"].tolist())
    valid_waves = load_waveforms(audio_dir, split.valid["filename"].tolist())
    train_labels = torch.tensor(split.train["target"].to_numpy())
    valid_labels = torch.tensor(split.valid["target"].to_numpy())

    classifier = AudioClassifier(len(names), width=profile["classifier_width"])
    classifier_config = {
        "kind": "classifier", "dataset": config.dataset, "train_files": split.train["filename"].tolist(),
        "valid_files": split.valid["filename"].tolist(), "width": profile["classifier_width"],
        "epochs": profile["classifier_epochs"], "lr": profile["classifier_lr"],
        "batch_size": profile["batch_size"], "seed": config.seed, "augmentation": "random circular time shift",
    }
    cache_dir = Path(config.cache_dir)

    def train(module: AudioClassifier) -> dict:
        module.to(device)
        return train_classifier(
            module, (mel_features(train_waves.to(device)), train_labels.to(device)),
            (mel_features(valid_waves.to(device)), valid_labels.to(device)),
            profile["classifier_epochs"], profile["classifier_lr"], profile["batch_size"], config.seed)

    classifier_key = cached_training(classifier, "classifier", classifier_config, cache_dir, train)
    classifier.to(device).eval().requires_grad_(False)
    record["classifier"] = {"checkpoint": classifier_key, "width": profile["classifier_width"],
                            "valid_accuracy": accuracy(classifier, mel_features(valid_waves.to(device)),
                                                       valid_labels.to(device))}

    noise = None
    if config.noise_dir:
        noise = torch.stack([load_clip(p) for p in noise_files(config.noise_dir)])
    resources = TrainingResources(classifier, classifier_key, train_waves, train_labels, noise, cache_dir,
                                  profile, device, config.seed)
    explainers = build_explainers(config.methods, config.method_options)
    for explainer in explainers:
        explainer.fit(resources)
    record["methods"] = {explainer.label: explainer.config() for explainer in explainers}
    record["trained_parts"] = resources.log

    evaluation = split.evaluation
    if config.setting == "ood":
        samples = draw_ood_mixtures(evaluation, split.contaminant_pool, seed=config.seed)
        contaminants = dict(zip(split.contaminant_pool["filename"],
                                load_waveforms(audio_dir, split.contaminant_pool["filename"].tolist())))
    elif config.setting == "id":
        if not config.noise_dir:
            raise FileNotFoundError("--setting id mixes each clip with noise: pass --noise-dir with noise recordings")
        files = noise_files(config.noise_dir)
        samples = draw_noise(evaluation, files, config.seed)
        contaminants = {p.name: w for p, w in zip(files, noise)}
    else:
        raise ValueError(f"unknown setting {config.setting!r}; choose id or ood")
    if config.limit is not None:
        samples = [s for s in samples if s.base_index < config.limit]
    base_waves = load_waveforms(audio_dir, evaluation["filename"].tolist()[: max(s.base_index for s in samples) + 1])
    record["evaluated_samples"] = len(samples)
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))

    writer = ResultWriter(out / "per_sample.csv")
    batches = [list(range(i, min(i + config.batch_size, len(samples)))) for i in range(0, len(samples), config.batch_size)]
    progress = tqdm(total=len(batches) * len(config.domains), desc="evaluate", unit="batch")
    for domain_name in config.domains:
        model = DomainModel(classifier, DOMAINS[domain_name]).eval()
        for batch in batches:
            progress.update()
            todo = [e for e in explainers if domain_name in e.domains and writer.missing(domain_name, e.label, batch)]
            if not todo:
                continue
            waves = torch.stack([samples[i].apply(base_waves[samples[i].base_index],
                                                  contaminants[samples[i].contaminant_file]) for i in batch]).to(device)
            features = model.domain.features(stft(waves))
            with torch.no_grad():
                logits = model(features)
            for explainer in todo:
                torch.manual_seed(config.seed)
                scores = evaluate_batch(model, explainer, features, logits, config.ad_softmax_twice)
                writer.write([
                    {"sample_id": i, "clip": samples[i].base_file, "contamination": samples[i].contamination,
                     "contaminant": samples[i].contaminant_file, "gain_x": samples[i].gain_x,
                     "gain_c": samples[i].gain_c, "label": int(evaluation["target"][samples[i].base_index]),
                     "predicted": int(logits[k].argmax()), "confidence": float(logits[k].softmax(0).max()),
                     "setting": domain_name, "method": explainer.label,
                     **{m: float(v[k]) for m, v in scores.items()}}
                    for k, i in enumerate(batch)])
    progress.close()

    rows = [(d, e.label) for d in config.domains for e in explainers]
    ad_note = "AD with softmax applied twice, as the published code" if config.ad_softmax_twice else "AD with a single softmax"
    title = f"{config.dataset.upper()} — {config.setting.upper()} ({'mixtures' if config.setting == 'ood' else 'noise at 0 dB'})"
    hyperparameters = [f"{e.label}: " + ", ".join(f"{k}={v}" for k, v in e.hyperparameters.items())
                       for e in explainers if e.hyperparameters]
    markdown = tables.write_tables(out, rows, title, [ad_note, f"split: {split.protocol}",
                                                       f"profile: {config.profile}, seed {config.seed}",
                                                       *hyperparameters])
    record["wall_time_s"] = round(time.time() - started, 1)
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    return markdown
