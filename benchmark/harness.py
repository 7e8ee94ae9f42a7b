"""The evaluation harness: clip → contamination → features → prediction → mask → metrics → rows.

One function per arrow (DESIGN.md). Per-sample rows are appended to
``per_sample.csv`` as each batch finishes; a rerun with ``resume`` skips the rows
already on disk, and the tables are built from the CSV.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import captum
import numpy as np
import pandas as pd
import soundfile as sf
import torch
from tqdm import tqdm

from benchmark import tables
from benchmark.checkpoints import cached_training, config_key, load_state
from benchmark.classifier import AudioClassifier, DomainModel
from benchmark.frontend import DOMAINS, listenable_waveform, log1p_magnitude, stft
from benchmark.profiles import PROFILES
from benchmark.training import accuracy, mel_features, train_classifier
from datasets.audio import CLIP_SAMPLES, SAMPLE_RATE, load_clip
from datasets.contamination import (ContaminatedSample, clean_samples, draw_from_files, draw_ood_mixtures,
                                    draw_white_noise, white_noise)
from datasets.folder import audio_files
from datasets.sources import AudioData, open_dataset
from methods import build_explainers
from methods.base import Explainer, TrainingResources
from methods.lmac import binarised_spectrogram, clean_spectrogram_bce
from metrics import faithfulness_scores, structure_scores


@dataclass
class RunConfig:
    """Everything a run depends on (recorded in run.json).

    methods: registry names; imports: user modules registering more methods; method_options: per-method constructor keywords;
    domains: "listenable" and/or "mel"; limit: evaluate only the first N base clips;
    ad_softmax_twice: AD as in the published code (True) or single softmax; resume: continue
    the results in ``out`` instead of replacing them.
    """

    dataset: str = "esc50"
    setting: str = "ood"
    contamination: str = "mixtures"
    data_root: str | None = None
    folds: str | None = None
    classifier_checkpoint: str | None = None
    noise_dir: str | None = None
    speech_dir: str | None = None
    methods: list[str] = field(default_factory=lambda: ["saliency", "lmac", "all-ones"])
    imports: list[str] = field(default_factory=list)
    method_options: dict[str, dict] = field(default_factory=dict)
    domains: list[str] = field(default_factory=lambda: ["listenable"])
    profile: str = "cpu"
    limit: int | None = None
    out: str = "results/runs/esc50-ood-mixtures-cpu"
    cache_dir: str = ""
    device: str = "cpu"
    seed: int = 0
    batch_size: int = 16
    ad_softmax_twice: bool = True
    save_audio: bool = False
    resume: bool = False

    def identity(self) -> dict:
        """The settings that define the results (not where or how fast they are computed)."""
        return {k: v for k, v in asdict(self).items() if k not in {"limit", "out", "cache_dir", "device", "batch_size", "save_audio", "resume"}}


def load_waveforms(paths: list[Path]) -> torch.Tensor:
    """(N, 80000) waveforms of the audio files (mono, 16 kHz, 5 s, peak 1)."""
    return torch.stack([load_clip(path) for path in tqdm(paths, desc="load audio", unit="clip", leave=False)])


def recordings(folder: str | os.PathLike | None, what: str, flag: str) -> list[Path]:
    """Audio files of a noise or speech folder.

    Raises:
        FileNotFoundError: no folder given, a missing folder or one without audio; the
            message names ``flag``, the option that sets it.
    """
    if not folder:
        raise FileNotFoundError(f"this setting needs {what}: pass {flag} DIR")
    try:
        return audio_files(folder)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}; pass {flag} with a folder of {what}") from None


def evaluation_set(config: "RunConfig", data: AudioData) -> tuple[list[ContaminatedSample], dict]:
    """The evaluated samples of the condition (§6) and the contaminant waveforms by name.

    ``id``: one noise clip from ``--noise-dir`` per clip at 0 dB; ``ood``: two
    contaminants per clip, ``--contamination`` mixtures (from the split's
    contaminant pool), speech (``--speech-dir``) or white noise; ``clean``: the clips.
    """
    evaluation, split = data.split.evaluation, data.split
    if config.setting == "clean":
        return clean_samples(evaluation), {}
    if config.setting == "id":
        files = recordings(config.noise_dir, "noise recordings", "--noise-dir")
        samples = draw_from_files(evaluation, [str(f) for f in files], "noise", config.seed, per_clip=1)
    elif config.contamination == "mixtures":
        return (draw_ood_mixtures(evaluation, split.contaminant_pool, seed=config.seed),
                dict(zip(split.contaminant_pool["filename"],
                         load_waveforms(data.paths(split.contaminant_pool)))))
    elif config.contamination == "speech":
        files = recordings(config.speech_dir, "speech recordings", "--speech-dir")
        samples = draw_from_files(evaluation, [str(f) for f in files], "speech", config.seed, per_clip=2)
    elif config.contamination == "white_noise":
        return draw_white_noise(evaluation, config.seed), {}
    else:
        raise ValueError(f"unknown contamination {config.contamination!r}; choose mixtures, speech or white_noise")
    names = sorted({s.contaminant_file for s in samples})
    return samples, dict(zip(names, load_waveforms([Path(n) for n in names])))


def contaminant(sample: ContaminatedSample, waveforms: dict) -> torch.Tensor | None:
    """The loaded contaminant of ``sample`` (white noise is generated from its seed)."""
    if sample.contamination == "white_noise":
        return white_noise(sample.noise_seed, CLIP_SAMPLES)
    return waveforms.get(sample.contaminant_file)


def condition_name(config: "RunConfig") -> str:
    """"id (noise at 0 dB)", "ood mixtures", "ood speech", "ood white_noise" or "clean"."""
    return {"id": "id (noise at 0 dB)", "clean": "clean"}.get(config.setting, f"ood {config.contamination}")


class ResultWriter:
    """Appends per-sample rows to ``per_sample.csv`` and knows which are already there.

    A file cut off in the middle of a row (a run killed while writing) is truncated
    after its last complete row on opening.
    """

    def __init__(self, path: Path):
        self.path = path
        self.done: set[tuple[str, str, int]] = set()
        self.columns: list[str] | None = None
        if path.exists():
            text = path.read_bytes()
            if text and not text.endswith(b"\n"):
                path.write_bytes(text[: text.rfind(b"\n") + 1])
        if path.exists() and path.stat().st_size:
            existing = pd.read_csv(path)
            self.columns = list(existing.columns)
            self.done = set(zip(existing["setting"], existing["method"], existing["sample_id"]))

    def missing(self, setting: str, method: str, sample_ids: list[int]) -> bool:
        return any((setting, method, i) not in self.done for i in sample_ids)

    def write(self, rows: list[dict]) -> None:
        """Append the rows not yet on disk (a batch interrupted half-way is completed, not duplicated).

        Raises:
            ValueError: the rows have other columns than the file.
        """
        rows = [r for r in rows if (r["setting"], r["method"], r["sample_id"]) not in self.done]
        if not rows:
            return
        new_file = self.columns is None
        self.columns = self.columns or list(rows[0])
        if any(list(r) != self.columns for r in rows):
            raise ValueError(f"per-sample rows with columns other than {self.path}'s")
        with self.path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new_file:
                writer.writerow(self.columns)
            writer.writerows([["" if v is None else v for v in r.values()] for r in rows])
        self.done.update((r["setting"], r["method"], r["sample_id"]) for r in rows)


@dataclass
class EvaluationSamples:
    """The evaluated samples of a run and what building their waveforms needs.

    samples: the contaminated samples (§6); base_waves: (N_clips, 80000) evaluation
    clips, row = ``base_index``; contaminants: loaded contaminant waveforms by file;
    labels: the true class of each evaluation clip.
    """

    samples: list[ContaminatedSample]
    base_waves: torch.Tensor
    contaminants: dict
    labels: list[int]
    _clean_targets: dict = field(default_factory=dict, repr=False)

    def waveforms(self, ids: list[int]) -> torch.Tensor:
        """The contaminated waveforms (B, 80000) of samples ``ids``."""
        picked = [self.samples[i] for i in ids]
        return torch.stack([s.apply(self.base_waves[s.base_index], contaminant(s, self.contaminants)) for s in picked])

    def clean_targets(self, ids: list[int], device: torch.device) -> torch.Tensor:
        """The binarised clean spectrograms (B, T, 513) bool of samples ``ids``, the target of
        the BCE-clean column; computed once per clip and run (a clip serves several samples)."""
        clips = [self.samples[i].base_index for i in ids]
        missing = sorted(set(clips) - set(self._clean_targets))
        if missing:
            spectra = log1p_magnitude(stft(self.base_waves[missing].to(device)))
            self._clean_targets.update(zip(missing, binarised_spectrogram(spectra)))
        return torch.stack([self._clean_targets[c] for c in clips])


def evaluation_samples(config: RunConfig, data: AudioData) -> EvaluationSamples:
    """The condition's samples of the evaluation part (the first ``config.limit`` clips' only, if set)."""
    evaluation = data.split.evaluation
    samples, contaminants = evaluation_set(config, data)
    if config.limit is not None:
        samples = [s for s in samples if s.base_index < config.limit]
    base_waves = load_waveforms(data.paths(evaluation.iloc[: max(s.base_index for s in samples) + 1]))
    return EvaluationSamples(samples, base_waves, contaminants, evaluation["target"].astype(int).tolist())


@dataclass
class EvaluationBatch:
    """What every method shares on one batch of one setting, computed once (§5).

    ids: the samples' indices in ``EvaluationSamples.samples``;
    waves: (B, N) evaluated waveforms at 16 kHz; spec: their complex STFT (B, T, 513);
    features: X of the setting (B, T, F); logits: (B, C) classifier output on X (the
    model keeps its representations for L-MAC and L2I); clean_target: the binarised
    clean spectrograms (B, T, 513) bool, the target of the BCE-clean column, or None.
    """

    ids: list[int]
    waves: torch.Tensor
    spec: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor
    clean_target: torch.Tensor | None = None


def batch_ids(count: int, batch_size: int) -> list[list[int]]:
    """Sample indices 0..count−1 in consecutive batches of ``batch_size`` (the last one shorter)."""
    return [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]


def prepare_batch(model: DomainModel, evaluation: EvaluationSamples, ids: list[int],
                  device: torch.device) -> EvaluationBatch:
    """The waveforms, STFT, features, BCE-clean target (listenable setting) and the one
    unmasked classifier pass of samples ``ids``: the work every method of the batch shares."""
    waves = evaluation.waveforms(ids).to(device)
    spec = stft(waves)
    features = model.domain.features(spec)
    logits, _ = model.unmasked_pass(features)
    clean_target = evaluation.clean_targets(ids, device) if model.domain.name == "listenable" else None
    return EvaluationBatch(list(ids), waves, spec, features, logits, clean_target)


def sample_seed(seed: int, sample_id: int) -> int:
    """The seed of a method's random draws for one sample (SmoothGrad's noise, SHAP's baselines
    and interpolation points): a function of the run's seed and the sample's index only, so
    that a sample's explanation does not depend on the batch it is in or on the other methods."""
    return int(np.random.SeedSequence([seed, sample_id]).generate_state(1)[0])


def evaluate_batch(model: DomainModel, explainer: Explainer, batch: EvaluationBatch,
                   ad_softmax_twice: bool, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Mask (B, T_m, F) of ``explainer`` for the predicted classes and all metrics, each (B,) (§5).

    Two forward passes besides the batch's shared one: p_in on M⊙X and p_out on
    (1−M)⊙X, with X cropped to the mask's frames. "BCE-clean" is NaN without ``batch.clean_target``.
    With ``model.per_sample`` (CPU) the explainer sees one sample at a time, as the
    model's passes do (see ``DomainModel.forward_with_representations``), with torch's
    generator seeded by ``sample_seed(seed, id)`` for each sample: every per-sample
    result is then the same whatever the batch size, at no cost on CPU. Batched (GPU),
    the generator is seeded once per batch, from its first sample.
    """
    target = batch.logits.argmax(1)
    if model.per_sample:  # batch-size-independent results, as the model's own passes
        masks = []
        for i, x, c in zip(batch.ids, batch.features.split(1), target.split(1)):
            torch.manual_seed(sample_seed(seed, i))
            masks.append(explainer.mask(model, x, c))
        mask = torch.cat(masks)
    else:
        torch.manual_seed(sample_seed(seed, batch.ids[0]))
        mask = explainer.mask(model, batch.features, target)
    cropped = batch.features[:, : mask.shape[1]]
    with torch.no_grad():
        masked_in = mask * cropped
        logits_in = model(masked_in)
        logits_out = model(cropped - masked_in)  # (1 − M)⊙X
    scores = faithfulness_scores(batch.logits, logits_in, logits_out, target, ad_softmax_twice=ad_softmax_twice)
    scores.update(structure_scores(mask))
    scores["BCE-clean"] = (torch.full((len(mask),), float("nan"), dtype=torch.float64) if batch.clean_target is None
                           else clean_spectrogram_bce(mask, batch.clean_target))
    return mask, scores


def write_audio(path: Path, waveform: torch.Tensor) -> None:
    """16 kHz mono PCM16 WAV of a waveform (N,)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform.detach().cpu().clamp(-1, 1).numpy(), SAMPLE_RATE, subtype="PCM_16")


def versions() -> dict[str, str]:
    """Versions of Python, the libraries and this code (git commit, when run from a checkout)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "captum": captum.__version__, "numpy": np.__version__, "pandas": pd.__version__, "code": commit or "unknown"}


def prepare_output(config: RunConfig) -> tuple[Path, dict]:
    """Create the output directory. Results already there of the same configuration are
    continued with ``config.resume`` and replaced without it.

    Raises:
        FileExistsError: the directory holds results of another configuration.
    """
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    run_json, per_sample = out / "run.json", out / "per_sample.csv"
    identity = config_key(config.identity())
    if per_sample.exists():
        previous = json.loads(run_json.read_text()) if run_json.exists() else {}
        if previous.get("config_key") != identity:
            raise FileExistsError(
                f"{out} holds results of another configuration; pass another --out or delete {per_sample}")
        if not config.resume:
            print(f"replacing the results in {out} (pass --resume to continue them instead)")
            per_sample.unlink()
    return out, {"config_key": identity, "config": asdict(config), "versions": versions()}


def load_classifier_checkpoint(path: str | os.PathLike) -> tuple[AudioClassifier, str, list[str] | None]:
    """A trained classifier, in one of two formats.

    - a ``classifier-<key>.pt`` of this benchmark's cache, with its ``.json`` beside it
      (width and class names recorded);
    - a SpeechBrain directory (the L-MAC recipe's ``embedding_model.ckpt``, a
      ``Cnn14(mel_bins=80, emb_dim=2048, return_reps=True)`` state dict, and
      ``classifier.ckpt``, a ``Linear(2048, n_classes)``); the width is read from the
      tensors, the class names are unknown (None).

    Returns:
        the classifier (eval mode), a key identifying the weights, the class names or None.
    Raises:
        FileNotFoundError: neither format is found at ``path``.
        ValueError: a tensor's shape does not fit (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        embedding, head = path / "embedding_model.ckpt", path / "classifier.ckpt"
        if not embedding.is_file() or not head.is_file():
            raise FileNotFoundError(f"{path} holds no SpeechBrain embedding_model.ckpt and classifier.ckpt")
        embedding_state = torch.load(embedding, map_location="cpu", weights_only=True)
        head_state = torch.load(head, map_location="cpu", weights_only=True)
        if "conv_block1.conv1.weight" not in embedding_state or "weight" not in head_state:
            raise ValueError(f"{path}: not a SpeechBrain Cnn14 / Linear checkpoint (no conv_block1.conv1.weight "
                             "in embedding_model.ckpt or no weight in classifier.ckpt)")
        classifier = AudioClassifier(head_state["weight"].shape[0],
                                     width=embedding_state["conv_block1.conv1.weight"].shape[0])
        load_state(classifier.embedding_model, embedding)
        load_state(classifier.head, head)
        digest = config_key({"embedding": embedding.stat().st_size, "head": head.stat().st_size, "path": str(path)})
        return classifier.eval(), digest, None
    description = path.with_suffix(".json")
    if not path.is_file() or not description.is_file():
        raise FileNotFoundError(f"classifier checkpoint {path} (with {description.name} beside it) not found; pass a "
                                "classifier-*.pt file from the checkpoint cache (--cache-dir) or a SpeechBrain "
                                "directory with embedding_model.ckpt and classifier.ckpt")
    config = json.loads(description.read_text())["config"]
    classifier = AudioClassifier(len(config["class_names"]), width=config["width"])
    load_state(classifier, path)
    return classifier.eval(), config_key(config), config["class_names"]


def prepare_classifier(config: RunConfig, data: AudioData, profile: dict, device: torch.device,
                       train_waves: torch.Tensor, valid_waves: torch.Tensor,
                       given: tuple[AudioClassifier, str, list[str] | None] | None) -> tuple[AudioClassifier, str]:
    """The classifier: ``given`` (a loaded ``--classifier-checkpoint``), or the CNN14 trained
    on the training part (cached by configuration, §2).

    Raises:
        ValueError: the dataset's classes differ from the given checkpoint's.
    """
    if given is not None:
        classifier, key, names = given
        if classifier.head.out_features != len(data.class_names) or names not in (None, data.class_names):
            raise ValueError(f"classifier checkpoint {config.classifier_checkpoint} knows "
                             f"{classifier.head.out_features} classes, the dataset has {len(data.class_names)} (or "
                             "other names); use a checkpoint of this dataset")
        return classifier.to(device), key
    split = data.split
    classifier = AudioClassifier(len(data.class_names), width=profile["classifier_width"])
    classifier_config = {
        "kind": "classifier", "dataset": config.dataset, "class_names": data.class_names,
        "train_files": split.train["filename"].tolist(), "valid_files": split.valid["filename"].tolist(),
        "width": profile["classifier_width"], "epochs": profile["classifier_epochs"], "lr": profile["classifier_lr"],
        "batch_size": profile["batch_size"], "seed": config.seed, "augmentation": "random circular time shift",
    }

    def train(module: AudioClassifier) -> dict:
        module.to(device)
        return train_classifier(
            module, (mel_features(train_waves.to(device)), torch.tensor(split.train["target"].to_numpy(), device=device)),
            (mel_features(valid_waves.to(device)), torch.tensor(split.valid["target"].to_numpy(), device=device)),
            profile["classifier_epochs"], profile["classifier_lr"], profile["batch_size"], config.seed)

    key = cached_training(classifier, "classifier", classifier_config, Path(config.cache_dir), train)
    return classifier.to(device), key


def prepare(config: RunConfig, record: dict) -> tuple[AudioData, AudioClassifier, list[Explainer]]:
    """Open the dataset, train or load the classifier and fit the explainers (all cached).

    Fills ``record`` (for run.json) with the data root, split, classifier and methods.
    """
    device = torch.device(config.device)
    profile = PROFILES[config.profile]
    given, checkpoint_classes = None, None
    if config.classifier_checkpoint:
        given = load_classifier_checkpoint(config.classifier_checkpoint)
        checkpoint_classes = given[2] or [f"class {i}" for i in range(given[0].head.out_features)]
    data = open_dataset(config.dataset, config.data_root, config.seed, config.folds, checkpoint_classes)
    split = data.split
    print(f"data: {data.root}\nsplit: {split.protocol}")
    record["data_root"] = str(data.root)
    record["split"] = split.describe()

    train_waves = load_waveforms(data.paths(split.train))
    valid_waves = load_waveforms(data.paths(split.valid)) if len(split.valid) else train_waves[:0]
    classifier, classifier_key = prepare_classifier(config, data, profile, device, train_waves, valid_waves, given)
    classifier.eval().requires_grad_(False)
    record["classifier"] = {"checkpoint": classifier_key, "width": classifier.embedding_model.width}
    if len(split.valid):
        record["classifier"]["valid_accuracy"] = accuracy(
            classifier, mel_features(valid_waves.to(device)), torch.tensor(split.valid["target"].to_numpy(), device=device))

    noise = None
    if config.noise_dir:
        noise = load_waveforms(recordings(config.noise_dir, "noise recordings", "--noise-dir"))
    resources = TrainingResources(classifier, classifier_key, train_waves, torch.tensor(split.train["target"].to_numpy()),
                                  noise, Path(config.cache_dir), profile, device, config.seed)
    explainers = build_explainers(config.methods, config.method_options)
    for explainer in explainers:
        explainer.fit(resources)
    record["methods"] = {explainer.label: explainer.config() for explainer in explainers}
    record["trained_parts"] = resources.log
    return data, classifier, explainers


def evaluate(config: RunConfig, classifier: AudioClassifier, explainers: list[Explainer],
             evaluation: EvaluationSamples, writer: ResultWriter, out: Path) -> None:
    """Explain and score every sample with every method in every setting of ``config.domains``.

    Works in batches of ``config.batch_size``: the waveforms, STFT, features and the
    unmasked classifier pass of a batch are computed once and shared by its methods;
    each mask is computed once and serves every metric and the audio writer. Rows go
    to ``writer`` as each method finishes a batch; batches already on disk are skipped.
    """
    device = torch.device(config.device)
    samples = evaluation.samples
    batches = batch_ids(len(samples), config.batch_size)
    progress = tqdm(total=len(batches) * len(config.domains), desc="evaluate", unit="batch")
    for domain_name in config.domains:
        model = DomainModel(classifier, DOMAINS[domain_name], per_sample=device.type == "cpu").eval()
        for batch in batches:
            progress.update()
            todo = [e for e in explainers if domain_name in e.domains and writer.missing(domain_name, e.label, batch)]
            if not todo:
                continue
            shared = prepare_batch(model, evaluation, batch, device)
            waves = shared.waves
            write_wavs = config.save_audio and domain_name == "listenable"
            if write_wavs:
                for k, i in enumerate(batch):
                    write_audio(out / "audio" / f"{i:04d}-input.wav", waves[k])
            predicted = shared.logits.argmax(1).tolist()
            confidence = shared.logits.softmax(1).amax(1).tolist()
            for explainer in todo:
                mask, scores = evaluate_batch(model, explainer, shared, config.ad_softmax_twice, config.seed)
                if write_wavs:
                    for k, audio in enumerate(listenable_waveform(mask, shared.spec, waves.shape[1])):
                        write_audio(out / "audio" / f"{batch[k]:04d}-{explainer.label.replace(' ', '_')}.wav", audio)
                scores = {m: v.tolist() for m, v in scores.items()}
                writer.write([
                    {"sample_id": i, "clip": samples[i].base_file, "contamination": samples[i].contamination,
                     "contaminant": samples[i].contaminant_file, "noise_seed": samples[i].noise_seed,
                     "gain_x": samples[i].gain_x, "gain_c": samples[i].gain_c,
                     "label": evaluation.labels[samples[i].base_index], "predicted": predicted[k],
                     "confidence": confidence[k], "setting": domain_name, "method": explainer.label,
                     **{m: v[k] for m, v in scores.items()}}
                    for k, i in enumerate(batch)])
    progress.close()


def run(config: RunConfig) -> str:
    """Run the benchmark end to end and return the Markdown table.

    Trains (or loads from the cache) the classifier and the trainable explainers,
    evaluates every method × setting on the contaminated evaluation samples and
    writes per_sample.csv, table.csv, table.md and run.json to ``config.out``.

    Raises:
        DatasetNotFoundError: no dataset at the data root (the CLI exits with code 2).
        FileNotFoundError, AudioError: missing noise/speech folder or checkpoint, unreadable audio.
    """
    started = time.time()
    torch.manual_seed(config.seed)
    out, record = prepare_output(config)
    data, classifier, explainers = prepare(config, record)
    evaluation = evaluation_samples(config, data)
    record["evaluated_samples"] = len(evaluation.samples)
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    prepared = time.time()
    evaluate(config, classifier, explainers, evaluation, ResultWriter(out / "per_sample.csv"), out)

    rows = [(d, e.label) for d in config.domains for e in explainers]
    ad_note = "AD with softmax applied twice, as the published code" if config.ad_softmax_twice else "AD with a single softmax"
    title = f"{config.dataset} — {condition_name(config)}"
    hyperparameters = [f"{e.label}: " + ", ".join(f"{k}={v}" for k, v in e.hyperparameters.items())
                       for e in explainers if e.hyperparameters]
    markdown = tables.write_tables(out, rows, title, [ad_note, f"split: {data.split.protocol}",
                                                       f"profile: {config.profile}, seed {config.seed}",
                                                       *hyperparameters])
    record["wall_time_s"] = {"prepare": round(prepared - started, 1), "evaluate": round(time.time() - prepared, 1)}
    (out / "run.json").write_text(json.dumps(record, indent=1, default=str))
    return markdown


def explain_file(config: RunConfig, audio: str | os.PathLike) -> str:
    """Explain one audio file with ``config.methods[0]`` in the listenable setting.

    Writes to ``config.out``: ``<stem>-input.wav``, ``<stem>-<method>.wav`` (the
    interpretation: ISTFT of the masked spectrogram with the input's phase) and
    ``<stem>-<method>.png`` (input spectrogram, mask, masked spectrogram).

    Returns:
        a one-line description of the prediction.
    Raises:
        AudioError: unreadable or silent file. ValueError: the method cannot explain
        the listenable setting.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    torch.manual_seed(config.seed)
    data, classifier, explainers = prepare(config, {})
    explainer = explainers[0]
    if "listenable" not in explainer.domains:
        raise ValueError(f"{explainer.name} does not explain the listenable setting")
    audio = Path(audio)
    waveform = load_clip(audio).unsqueeze(0).to(config.device)
    spec = stft(waveform)
    model = DomainModel(classifier, DOMAINS["listenable"]).eval()
    features = model.domain.features(spec)
    probabilities = model.unmasked_pass(features)[0].softmax(1)[0]  # kept for L-MAC / L2I
    predicted = int(probabilities.argmax())
    mask = explainer.mask(model, features, torch.tensor([predicted], device=features.device))
    out = Path(config.out)
    stem = f"{audio.stem}-{explainer.label.replace(' ', '_')}"
    write_audio(out / f"{audio.stem}-input.wav", waveform[0])
    write_audio(out / f"{stem}.wav", listenable_waveform(mask, spec, waveform.shape[1])[0])
    panels = [("input log1p|STFT|", features[0]), (f"{explainer.label} mask", mask[0]),
              ("masked input (the interpretation)", mask[0] * features[0, : mask.shape[1]])]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for axis, (title, image) in zip(axes, panels):
        axis.imshow(image.detach().cpu().T.numpy(), origin="lower", aspect="auto", cmap="magma")
        axis.set(title=title, xlabel="frame (11.6 ms)")
    axes[0].set_ylabel("STFT bin (7.8 Hz)")
    figure.tight_layout()
    figure.savefig(out / f"{stem}.png", dpi=80)
    plt.close(figure)
    return (f"{audio}: predicted {data.class_names[predicted]!r} (p = {float(probabilities[predicted]):.3f}); "
            f"wrote {stem}.wav, {stem}.png and {audio.stem}-input.wav to {out}")
