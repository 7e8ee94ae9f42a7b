"""What a run needs before it evaluates: every input checked and loaded (``load_inputs``), then the
classifier and the trainable explainers trained or loaded from the cache (``prepare``)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmark.config import RunConfig
from benchmark.pipeline import EvaluationSamples, evaluation_samples
from benchmark.reliance import as_record, check_reliance
from benchmark.speechbrain_import import load_classifier_checkpoint
from benchmark.training import accuracy, classifier_features, train_classifier
from classifiers import Classifier, classifier_class, load_pretrained
from classifiers.base import REQUIREMENTS
from classifiers.contract import check_contract
from classifiers.huggingface import check_class_names, weights_key
from datasets.audio import PEAK_NORMALISATIONS, load_clips
from datasets.folder import recordings
from datasets.sources import AudioData, open_dataset
from foundation import precision
from foundation.checkpoints import REFERENCE_MODELS, cached_training, config_key, content_key, describe_models
from foundation.profiles import PROFILES
from methods import build_explainers
from methods.base import Explainer, TrainingResources
from methods.perturbation import budget_lines, evaluations_per_sample


def check_split(data: AudioData, config: RunConfig, trains_classifier: bool, trains_explainers: bool,
                chooses_on_validation: bool = False) -> None:
    """Raise ``ValueError`` (naming ``--folds`` or the data) when the split leaves a part
    empty that the run needs: evaluation clips always, training and validation clips to
    train the classifier, training clips to train explainers, validation clips for explainers
    that choose on them (``needs_validation_clips``), pool clips for OOD mixtures."""
    split = data.split
    fix = f"pass --folds TRAIN:VALID:EVALUATION:POOL with folds that hold clips, or a fuller copy of {data.root}"
    if split.evaluation.empty:
        raise ValueError(f"the split leaves no evaluation clip ({split.protocol}); {fix}")
    if trains_classifier and (split.train.empty or split.valid.empty):
        part = "training" if split.train.empty else "validation"
        raise ValueError(f"the split leaves no {part} clip to train the classifier ({split.protocol}); {fix}, or "
                         "pass --classifier-checkpoint")
    if trains_explainers and split.train.empty:
        raise ValueError(f"the split leaves no training clip for the trainable explainers ({split.protocol}); {fix}")
    if chooses_on_validation and split.valid.empty:
        raise ValueError(f"the split leaves no validation clip, on which L2I chooses its epoch ({split.protocol}); "
                         f"{fix}")
    if config.setting == "ood" and config.contamination == "mixtures" and split.contaminant_pool.empty:
        raise ValueError(f"the split leaves no clip to mix into the evaluation clips ({split.protocol}); {fix}")


@dataclass
class RunInputs:
    """Everything a run reads, checked and loaded before anything trains.

    data: the opened dataset and its split; train_waves, valid_waves: (N, 80000) clips of
    the training and validation parts; noise: (K, 80000) ``--noise-dir`` clips or None;
    evaluation: the evaluated samples; classifier: ``--classifier``, built untrained (to be trained
    or loaded by ``prepare_classifier``) or given (a ``--classifier-checkpoint`` or a pretrained
    ``hf:`` model); given_key: the given classifier's content key, or None when it is to be trained;
    explainers: built and checked against the classifier, not fitted; train_key, valid_key,
    noise_key: content keys (audio bytes, labels, normalisation); evaluations_per_sample: model passes per
    sample of the perturbation explainers, {label: {domain: n}} (``methods.perturbation``).
    """

    data: AudioData
    train_waves: torch.Tensor
    valid_waves: torch.Tensor
    noise: torch.Tensor | None
    evaluation: EvaluationSamples | None
    classifier: Classifier
    given_key: str | None
    explainers: list[Explainer]
    train_key: str
    valid_key: str
    noise_key: str | None
    evaluations_per_sample: dict


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
    given, flag = None, f"--classifier {config.classifier}"
    if config.classifier_checkpoint:
        if config.classifier != "cnn14":
            raise ValueError(f"--classifier-checkpoint loads CNN14 checkpoints; {flag} is trained on the data and "
                             "cached, or loaded from a folder with --classifier hf:PATH")
        given = load_classifier_checkpoint(config.classifier_checkpoint, cache_dir)
        flag = f"--classifier-checkpoint {config.classifier_checkpoint}"
    elif config.classifier.startswith("hf:"):
        given = (load_pretrained(config.classifier), None, None)  # its key and names once its classes are set
    zero_shot = given is not None and given[0].zero_shot  # zero-shot (CLAP): its classes are the dataset's
    if config.prompt_template is not None and not zero_shot:
        raise ValueError(f"--prompt-template: {flag} is not a zero-shot CLAP model; drop --prompt-template")
    data = open_dataset(config.dataset, config.data_root, config.seed, config.folds,
                        None if given is None or zero_shot else given[0].class_names, config.data_folds, cache_dir)
    if config.shuffle_labels:
        shuffle_training_labels(data, config.seed)
    if zero_shot:  # the prompts enter its key, so explainers trained on it are cached per template and names
        given[0].use_class_names(data.class_names, config.prompt_template)
    if given is not None and given[1] is None:
        given = (given[0], weights_key(given[0]), given[0].class_names)
    if given is not None:
        check_class_names(flag, given[0].class_names, data.class_names, names_known=given[2] is not None)
    if given is None:
        torch.manual_seed(config.effective_training_seed)  # the same initial weights whatever ran before
        classifier = classifier_class(config.classifier).build(data.class_names, config.profile)
    else:
        classifier = given[0]
    foreign = [d for d in config.domains if d not in ("listenable", classifier.feature_domain)]
    if foreign:
        raise ValueError(f"--domains {','.join(config.domains)}: {flag} has no {foreign[0]} domain; its own features "
                         f"are the {classifier.feature_domain} domain: pass --domains listenable,"
                         f"{classifier.feature_domain}")
    explainers = build_explainers(config.methods, config.method_options)
    explainers = supported_explainers(explainers, classifier.eval(), flag, config.methods_all)
    for explainer in explainers:
        explainer.check()
    budget = evaluations_per_sample(explainers, classifier, config.domains)  # refuses a window or bands off the grid
    check_split(data, config, trains_classifier=given is None,
                trains_explainers=any(type(e).fit is not Explainer.fit for e in explainers),
                chooses_on_validation=any(e.needs_validation_clips for e in explainers))
    noise, noise_key = None, None
    if config.noise_dir:
        files = recordings(config.noise_dir, "noise recordings", "--noise-dir")
        noise = load_clips(files, config.peak_normalisation)
        noise_key = content_key(files, cache_dir, peak_normalisation=config.peak_normalisation)
    evaluation = evaluation_samples(config, data) if evaluation_part else None
    for line in budget_lines(budget, explainers, len(evaluation.samples) if evaluation else 1, config.domains,
                             14 if config.curves else 2):
        print(line)  # before anything trains
    split = data.split
    (train_sources, generated), (valid_sources, _) = data.provenance(split.train), data.provenance(split.valid)
    train_waves = load_clips(data.paths(split.train), config.peak_normalisation)
    probe = train_waves[:1] if len(train_waves) else load_clips(data.paths(split.evaluation.iloc[:1]))
    for note in check_contract(classifier, probe, len(data.class_names), contract_needs(explainers), flag):
        print(note)  # before anything trains
    return RunInputs(
        data, train_waves, load_clips(data.paths(split.valid), config.peak_normalisation), noise, evaluation,
        classifier, None if given is None else given[1], explainers,
        content_key(train_sources, cache_dir, targets=split.train["target"].tolist(),
                    peak_normalisation=config.peak_normalisation, **generated),
        content_key(valid_sources, cache_dir, targets=split.valid["target"].tolist(),
                    peak_normalisation=config.peak_normalisation, **generated),
        noise_key, budget)


def contract_needs(explainers: list[Explainer]) -> set[str]:
    """What ``explainers`` rely on of the classifier (``classifiers.contract.check_contract``): their
    ``requires``, and "gradients" unless every one is a control."""
    needs = {need for explainer in explainers for need in explainer.requires}
    return needs | ({"gradients"} if any(not explainer.control for explainer in explainers) else set())


def shuffle_training_labels(data: AudioData, seed: int) -> None:
    """Permute the targets of the training and the validation part in place (``--shuffle-labels``), each with
    ``numpy.random.default_rng(seed)``; the evaluation part keeps its true labels."""
    rng = np.random.default_rng(seed)
    for part in (data.split.train, data.split.valid):
        part["target"] = rng.permutation(part["target"].to_numpy())


def supported_explainers(explainers: list[Explainer], classifier: Classifier, flag: str,
                         skip_unsupported: bool) -> list[Explainer]:
    """The explainers whose ``requires`` the classifier meets (``Classifier.capabilities``).

    Raises:
        ValueError: a method named in --methods needs what the classifier does not give (the message
            names the method and what is missing); with ``skip_unsupported`` (--methods all) such
            methods are left out instead, with a printed line.
    """
    capabilities = classifier.capabilities()
    kept = []
    for explainer in explainers:
        missing = [REQUIREMENTS[need] for need in explainer.requires if need not in capabilities]
        if not missing:
            kept.append(explainer)
        elif skip_unsupported:
            print(f"{explainer.name}: left out, {flag} gives no {'; no '.join(missing)}")
        else:
            raise ValueError(f"--methods {explainer.name}: {flag} gives no {'; no '.join(missing)}; drop "
                             f"{explainer.name} from --methods or use a classifier that gives it")
    return kept


def reference_dir(config: RunConfig) -> Path | None:
    """Where shipped reference models are looked up: ``REFERENCE_MODELS``, or None with ``--retrain``."""
    return None if config.retrain else REFERENCE_MODELS


def prepare_classifier(config: RunConfig, inputs: RunInputs, profile: dict, device: torch.device,
                       models: list[dict] | None = None,
                       expected_models: dict[str, str] | None = None) -> tuple[Classifier, str]:
    """The classifier: the given one (``--classifier-checkpoint``, ``hf:``), or ``--classifier`` trained
    on the training part (a shipped reference model, or cached by its training configuration and the
    training audio's content); ``models`` gets its entry (``cached_training``'s ``used``)."""
    classifier = inputs.classifier
    if inputs.given_key is not None:
        return classifier.to(device), inputs.given_key
    split = inputs.data.split
    seed = config.effective_training_seed
    schedule = classifier.training_config(config.profile)
    classifier_config = {
        "kind": "classifier", "class_names": inputs.data.class_names, "train_audio": inputs.train_key,
        "valid_audio": inputs.valid_key, **schedule, "batch_size": profile["batch_size"], "seed": seed,
        "augmentation": "random circular time shift", **precision.key_part(config.precision),
    }

    def train(module: Classifier) -> dict:
        module.to(device)
        return train_classifier(
            module, (classifier_features(module, inputs.train_waves.to(device)),
                     torch.tensor(split.train["target"].to_numpy(), device=device)),
            (classifier_features(module, inputs.valid_waves.to(device)),
             torch.tensor(split.valid["target"].to_numpy(), device=device)),
            schedule["epochs"], schedule["lr"], profile["batch_size"], seed, config.precision)

    key = cached_training(classifier, "classifier", classifier_config, Path(config.cache_dir), train,
                          reference_dir(config), models, expected_models)
    return classifier.to(device), key


def prepare(config: RunConfig, record: dict, evaluation_part: bool = True,
            expected_models: dict[str, str] | None = None) -> tuple[RunInputs, Classifier, list[Explainer]]:
    """``load_inputs``, then ``prepare_models``: what every command that explains needs."""
    inputs = load_inputs(config, evaluation_part)
    classifier, explainers = prepare_models(config, inputs, record, expected_models)
    return inputs, classifier, explainers


def prepare_models(config: RunConfig, inputs: RunInputs, record: dict,
                   expected_models: dict[str, str] | None = None) -> tuple[Classifier, list[Explainer]]:
    """Train or load the classifier and fit the explainers (all cached), on inputs loaded by ``load_inputs``.

    Fills ``record`` (for run.json) with the data root, split, classifier and methods. ``expected_models``
    (file name → SHA-256, the models of a run that is resumed or reported on): every model must then be
    loaded with exactly these bytes, and none is trained (``foundation.checkpoints.cached_training``).

    Raises:
        CheckpointError: an expected model is missing or differs; ValueError: the classifier breaks its
            contract (``classifiers.contract.check_contract``).
    """
    device = torch.device(config.device)
    profile = PROFILES[config.profile]
    split = inputs.data.split
    print(f"data: {inputs.data.root}\nsplit: {split.protocol}")
    record["data_root"] = str(inputs.data.root)
    record["split"] = split.describe()
    record["audio"] = {"train": inputs.train_key, "valid": inputs.valid_key, "noise": inputs.noise_key,
                       "peak_normalisation": PEAK_NORMALISATIONS[config.peak_normalisation]}
    models: list[dict] = []
    classifier, classifier_key = prepare_classifier(config, inputs, profile, device, models, expected_models)
    classifier.eval().requires_grad_(False)
    if inputs.given_key is None:  # a given classifier was checked as loaded (load_inputs); this one's weights now
        check_contract(classifier, inputs.train_waves[:1].to(device), len(inputs.data.class_names),
                       contract_needs(inputs.explainers), f"--classifier {config.classifier} "
                       f"({describe_models(models)})")
    record["classifier"] = {"checkpoint": classifier_key, **classifier.describe()}
    if len(split.valid) and (split.valid["target"] >= 0).all():
        record["classifier"]["valid_accuracy"] = accuracy(
            classifier, classifier_features(classifier, inputs.valid_waves.to(device)),
            torch.tensor(split.valid["target"].to_numpy(), device=device))
    if inputs.data.name == "controlled":  # before the explainers train: a classifier that ignores the cue is refused
        clips = evaluation_samples(replace(config, setting="clean", limit=None), inputs.data)
        flag = f"--classifier {config.classifier}" + (" trained with --shuffle-labels" if config.shuffle_labels else "")
        record["reliance"] = as_record(check_reliance(classifier, clips, config.domains, device, config.batch_size,
                                                      flag))
    resources = TrainingResources(
        classifier, classifier_key, inputs.train_waves, torch.tensor(split.train["target"].to_numpy()), inputs.noise,
        Path(config.cache_dir), profile, device, config.effective_training_seed,
        data_key=config_key({"train": inputs.train_key, "noise": inputs.noise_key}),
        valid_waveforms=inputs.valid_waves, valid_key=inputs.valid_key,
        peak_normalisation=config.peak_normalisation, precision=config.precision, domains=tuple(config.domains),
        reference_dir=reference_dir(config), models=models, expected_models=expected_models)
    for explainer in inputs.explainers:
        explainer.fit(resources)
    record["methods"] = {explainer.label: explainer.config() for explainer in inputs.explainers}
    record["evaluations_per_sample"] = inputs.evaluations_per_sample
    record["left_out"] = [m for m in config.methods if m not in {e.name for e in inputs.explainers}]
    record["trained_parts"] = resources.log
    record["models"] = models
    return classifier, inputs.explainers
