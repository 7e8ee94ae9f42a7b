"""The evaluation harness: clip → contamination → features → prediction → mask → metrics → rows.

One function per arrow (DESIGN.md). Every input is checked and loaded
(``load_inputs``) before anything trains (``prepare``). Per-sample rows are appended
to ``OUT/unfinished/per_sample.csv`` as each batch finishes and replace the earlier
results only when the run has finished (``benchmark.store``); a rerun with
``resume`` skips the rows already on disk, and the tables are built from the CSV.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from benchmark import tables
from benchmark.checkpoints import cached_training, config_key, content_key
from benchmark.classifier import AudioClassifier, DomainModel
from benchmark.frontend import DOMAINS, listenable_waveform, log1p_magnitude, stft
from benchmark.profiles import PROFILES
from benchmark.provenance import versions
from benchmark.speechbrain_import import load_classifier_checkpoint
from benchmark.store import ResultWriter, RunStore
from benchmark.training import accuracy, mel_features, train_classifier
from datasets.audio import CLIP_SAMPLES, PEAK_NORMALISATIONS, SAMPLE_RATE, load_clip
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
    ad_softmax_twice: AD as in the published code (True) or single softmax; peak_normalisation:
    "max" (x / x.max(), the reference's) or "absmax" (x / max|x|) for clips and mixtures;
    resume: continue the results in ``out`` instead of replacing them.
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
    peak_normalisation: str = "max"
    save_audio: bool = False
    resume: bool = False

    def identity(self) -> dict:
        """The settings that define the results (not where or how fast they are computed)."""
        return {k: v for k, v in asdict(self).items() if k not in {"limit", "out", "cache_dir", "device", "batch_size", "save_audio", "resume"}}


def load_waveforms(paths: list[Path], peak_normalisation: str) -> torch.Tensor:
    """(N, 80000) waveforms of the audio files (mono, 16 kHz, 5 s, peak-normalised: ``load_clip``);
    (0, 80000) for no files.

    Raises:
        AudioError: an unreadable, empty or silent file (named).
    """
    clips = [load_clip(path, peak_normalisation=peak_normalisation)
             for path in tqdm(paths, desc="load audio", unit="clip", leave=False)]
    return torch.stack(clips) if clips else torch.zeros(0, CLIP_SAMPLES)


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
                         load_waveforms(data.paths(split.contaminant_pool), config.peak_normalisation))))
    elif config.contamination == "speech":
        files = recordings(config.speech_dir, "speech recordings", "--speech-dir")
        samples = draw_from_files(evaluation, [str(f) for f in files], "speech", config.seed, per_clip=2)
    elif config.contamination == "white_noise":
        return draw_white_noise(evaluation, config.seed), {}
    else:
        raise ValueError(f"unknown contamination {config.contamination!r}; choose mixtures, speech or white_noise")
    names = sorted({s.contaminant_file for s in samples})
    return samples, dict(zip(names, load_waveforms([Path(n) for n in names], config.peak_normalisation)))


def contaminant(sample: ContaminatedSample, waveforms: dict) -> torch.Tensor | None:
    """The loaded contaminant of ``sample`` (white noise is generated from its seed)."""
    if sample.contamination == "white_noise":
        return white_noise(sample.noise_seed, CLIP_SAMPLES)
    return waveforms.get(sample.contaminant_file)


def condition_name(config: "RunConfig") -> str:
    """"id (noise at 0 dB)", "ood mixtures", "ood speech", "ood white_noise" or "clean"."""
    return {"id": "id (noise at 0 dB)", "clean": "clean"}.get(config.setting, f"ood {config.contamination}")


@dataclass
class EvaluationSamples:
    """The evaluated samples of a run and what building their waveforms needs.

    samples: the contaminated samples (§6); base_waves: (N_clips, 80000) evaluation
    clips, row = ``base_index``; contaminants: loaded contaminant waveforms by file;
    labels: the true class of each evaluation clip; peak_normalisation: how each
    mixture is scaled ("max": ÷ its signed maximum, the reference's; "absmax").
    """

    samples: list[ContaminatedSample]
    base_waves: torch.Tensor
    contaminants: dict
    labels: list[int]
    peak_normalisation: str = "max"
    _clean_targets: dict = field(default_factory=dict, repr=False)

    def waveforms(self, ids: list[int]) -> torch.Tensor:
        """The contaminated waveforms (B, 80000) of samples ``ids``."""
        picked = [self.samples[i] for i in ids]
        return torch.stack([s.apply(self.base_waves[s.base_index], contaminant(s, self.contaminants),
                                    self.peak_normalisation) for s in picked])

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
    base_waves = load_waveforms(data.paths(evaluation.iloc[: max(s.base_index for s in samples) + 1]),
                                config.peak_normalisation)
    return EvaluationSamples(samples, base_waves, contaminants, evaluation["target"].astype(int).tolist(),
                             config.peak_normalisation)


@dataclass
class EvaluationBatch:
    """What every method shares on one batch of one domain, computed once (§5).

    ids: the samples' indices in ``EvaluationSamples.samples``;
    waves: (B, N) evaluated waveforms at 16 kHz; spec: their complex STFT (B, T, 513);
    features: X of the domain (B, T, F); logits: (B, C) classifier output on X (the
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
    """The waveforms, STFT, features, BCE-clean target (listenable domain) and the one
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
    """16 kHz mono 32-bit float WAV of a waveform (N,), unclipped (a reference-normalised
    clip may hold samples below −1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform.detach().cpu().numpy(), SAMPLE_RATE, subtype="FLOAT")


def check_split(data: AudioData, config: RunConfig, trains_classifier: bool) -> None:
    """Raise ``ValueError`` (naming ``--folds`` or the data) when the split leaves a part
    empty that the run needs: evaluation clips always, training clips for any training,
    validation clips to train the classifier, pool clips for OOD mixtures."""
    split, fix = data.split, f"pass --folds TRAIN:VALID:EVALUATION:POOL with folds that hold clips, or a fuller copy of {data.root}"
    if split.evaluation.empty:
        raise ValueError(f"the split leaves no evaluation clip ({split.protocol}); {fix}")
    if trains_classifier and (split.train.empty or split.valid.empty):
        part = "training" if split.train.empty else "validation"
        raise ValueError(f"the split leaves no {part} clip to train the classifier ({split.protocol}); {fix}, or "
                         "pass --classifier-checkpoint")
    if split.train.empty:
        raise ValueError(f"the split leaves no training clip for the trainable explainers ({split.protocol}); {fix}")
    if config.setting == "ood" and config.contamination == "mixtures" and split.contaminant_pool.empty:
        raise ValueError(f"the split leaves no clip to mix into the evaluation clips ({split.protocol}); {fix}")


@dataclass
class RunInputs:
    """Everything a run reads, checked and loaded before anything trains.

    data: the opened dataset and its split; train_waves, valid_waves: (N, 80000) clips of
    the training and validation parts; noise: (K, 80000) ``--noise-dir`` clips or None;
    evaluation: the evaluated samples; given_classifier: a loaded ``--classifier-checkpoint``
    (classifier, content key, class names) or None; explainers: built and checked, not fitted;
    train_key, valid_key, noise_key: content keys (audio bytes, labels, normalisation).
    """

    data: AudioData
    train_waves: torch.Tensor
    valid_waves: torch.Tensor
    noise: torch.Tensor | None
    evaluation: EvaluationSamples | None
    given_classifier: tuple[AudioClassifier, str, list[str] | None] | None
    explainers: list[Explainer]
    train_key: str
    valid_key: str
    noise_key: str | None


def load_inputs(config: RunConfig, evaluation_part: bool = True) -> RunInputs:
    """Open, check and load everything the run needs, in the order a failure is cheapest
    to report: checkpoints, dataset and split, explainer options and files, noise clips,
    evaluation samples (unless ``evaluation_part`` is False: then ``evaluation`` is None
    and the evaluation clips are not read), training audio. Nothing is trained.

    Raises:
        DatasetNotFoundError, FileNotFoundError, CheckpointError, AudioError, ValueError:
        the message names the flag or file and the fix (the CLI exits with code 2).
    """
    cache_dir = Path(config.cache_dir)
    given, checkpoint_classes = None, None
    if config.classifier_checkpoint:
        given = load_classifier_checkpoint(config.classifier_checkpoint, cache_dir)
        checkpoint_classes = given[2] or [f"class {i}" for i in range(given[0].head.out_features)]
    data = open_dataset(config.dataset, config.data_root, config.seed, config.folds, checkpoint_classes)
    if given is not None and (given[0].head.out_features != len(data.class_names)
                              or given[2] not in (None, data.class_names)):
        raise ValueError(f"--classifier-checkpoint {config.classifier_checkpoint} knows {given[0].head.out_features} "
                         f"classes, the dataset has {len(data.class_names)} (or other names); use a checkpoint of "
                         "this dataset")
    check_split(data, config, trains_classifier=given is None)
    explainers = build_explainers(config.methods, config.method_options)
    for explainer in explainers:
        explainer.check()
    noise, noise_key = None, None
    if config.noise_dir:
        files = recordings(config.noise_dir, "noise recordings", "--noise-dir")
        noise = load_waveforms(files, config.peak_normalisation)
        noise_key = content_key(files, cache_dir, peak_normalisation=config.peak_normalisation)
    evaluation = evaluation_samples(config, data) if evaluation_part else None
    split = data.split
    train_paths, valid_paths = data.paths(split.train), data.paths(split.valid)
    return RunInputs(
        data, load_waveforms(train_paths, config.peak_normalisation),
        load_waveforms(valid_paths, config.peak_normalisation), noise, evaluation, given, explainers,
        content_key(train_paths, cache_dir, targets=split.train["target"].tolist(),
                    peak_normalisation=config.peak_normalisation),
        content_key(valid_paths, cache_dir, targets=split.valid["target"].tolist(),
                    peak_normalisation=config.peak_normalisation),
        noise_key)


def prepare_classifier(config: RunConfig, inputs: RunInputs, profile: dict,
                       device: torch.device) -> tuple[AudioClassifier, str]:
    """The classifier: the given ``--classifier-checkpoint``, or the CNN14 trained on the
    training part (cached by configuration and training-audio content, §2)."""
    if inputs.given_classifier is not None:
        classifier, key, _ = inputs.given_classifier
        return classifier.to(device), key
    split = inputs.data.split
    classifier = AudioClassifier(len(inputs.data.class_names), width=profile["classifier_width"])
    classifier_config = {
        "kind": "classifier", "class_names": inputs.data.class_names, "train_audio": inputs.train_key,
        "valid_audio": inputs.valid_key, "width": profile["classifier_width"], "epochs": profile["classifier_epochs"],
        "lr": profile["classifier_lr"], "batch_size": profile["batch_size"], "seed": config.seed,
        "augmentation": "random circular time shift",
    }

    def train(module: AudioClassifier) -> dict:
        module.to(device)
        return train_classifier(
            module, (mel_features(inputs.train_waves.to(device)),
                     torch.tensor(split.train["target"].to_numpy(), device=device)),
            (mel_features(inputs.valid_waves.to(device)), torch.tensor(split.valid["target"].to_numpy(), device=device)),
            profile["classifier_epochs"], profile["classifier_lr"], profile["batch_size"], config.seed)

    key = cached_training(classifier, "classifier", classifier_config, Path(config.cache_dir), train)
    return classifier.to(device), key


def prepare(config: RunConfig, record: dict,
            evaluation_part: bool = True) -> tuple[RunInputs, AudioClassifier, list[Explainer]]:
    """``load_inputs``, then train or load the classifier and fit the explainers (all cached).

    Fills ``record`` (for run.json) with the data root, split, classifier and methods.
    """
    inputs = load_inputs(config, evaluation_part)
    device = torch.device(config.device)
    profile = PROFILES[config.profile]
    split = inputs.data.split
    print(f"data: {inputs.data.root}\nsplit: {split.protocol}")
    record["data_root"] = str(inputs.data.root)
    record["split"] = split.describe()
    record["audio"] = {"train": inputs.train_key, "valid": inputs.valid_key, "noise": inputs.noise_key,
                       "peak_normalisation": PEAK_NORMALISATIONS[config.peak_normalisation]}
    classifier, classifier_key = prepare_classifier(config, inputs, profile, device)
    classifier.eval().requires_grad_(False)
    record["classifier"] = {"checkpoint": classifier_key, "width": classifier.embedding_model.width}
    if len(split.valid):
        record["classifier"]["valid_accuracy"] = accuracy(
            classifier, mel_features(inputs.valid_waves.to(device)),
            torch.tensor(split.valid["target"].to_numpy(), device=device))
    resources = TrainingResources(
        classifier, classifier_key, inputs.train_waves, torch.tensor(split.train["target"].to_numpy()), inputs.noise,
        Path(config.cache_dir), profile, device, config.seed,
        data_key=config_key({"train": inputs.train_key, "noise": inputs.noise_key}),
        peak_normalisation=config.peak_normalisation)
    for explainer in inputs.explainers:
        explainer.fit(resources)
    record["methods"] = {explainer.label: explainer.config() for explainer in inputs.explainers}
    record["trained_parts"] = resources.log
    return inputs, classifier, inputs.explainers


def evaluate(config: RunConfig, classifier: AudioClassifier, explainers: list[Explainer],
             evaluation: EvaluationSamples, writer: ResultWriter, out: Path) -> None:
    """Explain and score every sample with every method in every domain of ``config.domains``.

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
                     "confidence": confidence[k], "domain": domain_name, "method": explainer.label,
                     **{m: v[k] for m, v in scores.items()}}
                    for k, i in enumerate(batch)])
    progress.close()


def run(config: RunConfig) -> str:
    """Run the benchmark end to end and return the Markdown table.

    Checks and loads every input, trains (or loads from the cache) the classifier and
    the trainable explainers, evaluates every method × domain on the contaminated
    evaluation samples into ``OUT/unfinished/``, and only then replaces the results in
    ``config.out`` (per_sample.csv, table.csv, table.md, run.json; ``benchmark.store``).

    Raises:
        FileExistsError: ``config.out`` holds results of another configuration.
        DatasetNotFoundError, FileNotFoundError, CheckpointError, AudioError, ValueError:
            bad input, reported before anything trains (the CLI exits with code 2).
    """
    started = time.time()
    torch.manual_seed(config.seed)
    identity = config_key(config.identity())
    store = RunStore(Path(config.out), identity, config.resume)
    record = {"config_key": identity, "config": asdict(config), "versions": versions()}
    inputs, classifier, explainers = prepare(config, record)
    evaluation = inputs.evaluation
    record["evaluated_clips"] = len({s.base_index for s in evaluation.samples})
    record["evaluated_samples"] = len(evaluation.samples)
    writer = store.start(record, len(evaluation.samples), config.save_audio)
    prepared = time.time()
    evaluate(config, classifier, explainers, evaluation, writer, store.work)

    rows = [(d, e.label) for d in config.domains for e in explainers]
    ad_note = "AD with softmax applied twice, as the published code" if config.ad_softmax_twice else "AD with a single softmax"
    title = f"{config.dataset} — {condition_name(config)}"
    hyperparameters = [f"{e.label}: " + ", ".join(f"{k}={v}" for k, v in e.hyperparameters.items())
                       for e in explainers if e.hyperparameters]
    markdown = tables.write_tables(store.work, rows, title, [
        ad_note, f"peak normalisation: {PEAK_NORMALISATIONS[config.peak_normalisation]}",
        f"split: {inputs.data.split.protocol}", f"profile: {config.profile}, seed {config.seed}", *hyperparameters])
    record["wall_time_s"] = {"prepare": round(prepared - started, 1), "evaluate": round(time.time() - prepared, 1)}
    store.finish(record)
    return markdown
