"""Pretrained ``transformers`` audio classifiers: ``--classifier hf:PATH_OR_ID``.

PATH_OR_ID is a folder written by ``save_pretrained`` (the model and its feature extractor) or a
hub id, read through the Hugging Face cache (downloaded there by ``transformers`` when online).
Class names come from the model's ``config.id2label``. The benchmark explains the predicted class,
so a pretrained model needs no labels: ``--dataset folder`` of unlabelled recordings works.

Supported: every architecture of ``transformers``' audio-classification mapping (``FAMILIES``), each
with its feature extractor's features computed differentiably in torch: Audio Spectrogram Transformers
(``classifiers.ast``), the wav2vec2 family (``classifiers.wav2vec2``), Whisper (``classifiers.whisper``)
and Wav2Vec2-BERT (``classifiers.wav2vec2_bert``); and CLAP (``ClapModel``) as a zero-shot classifier
of the dataset's class names (``classifiers.clap``). Another model: wrap it in a ``Classifier`` of
your own.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from classifiers.base import Classifier
from classifiers.wav2vec2 import WAVEFORM_MODEL_TYPES

FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "audio-spectrogram-transformer": ("classifiers.ast", "ASTClassifier", ("ASTFeatureExtractor",)),
    **{model_type: ("classifiers.wav2vec2", "WaveformClassifier", ("Wav2Vec2FeatureExtractor",))
       for model_type in WAVEFORM_MODEL_TYPES},
    "whisper": ("classifiers.whisper", "WhisperClassifier", ("WhisperFeatureExtractor",)),
    "wav2vec2-bert": ("classifiers.wav2vec2_bert", "Wav2Vec2BertClassifier", ("SeamlessM4TFeatureExtractor",)),
}
"""``config.model_type`` → (module, class, the feature extractors it computes in torch) of every architecture
of the audio-classification auto mapping of the pinned ``transformers``. Each class takes
``(model, class_names, extractor)`` and raises ``ValueError`` for an extractor that does not match the model
or a model that cannot take a 5 s clip. CLAP (``ClapModel``) is loaded by ``classifiers.clap``."""


def _refuse(name: str, why: str) -> ValueError:
    return ValueError(f"--classifier hf:{name}: {why}")


def load(name: str) -> Classifier:
    """The model and feature extractor of folder or hub id ``name``, in eval mode.

    Raises:
        ValueError: a missing folder; one without a transformers config, model or feature extractor;
            a model type outside ``FAMILIES`` and CLAP; a feature extractor of another kind or other settings
            than the model's; a model that cannot take a 5 s clip (each message names the fix).
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    folder = Path(name).expanduser()
    local = folder.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if local and not folder.is_dir():
        raise _refuse(name, "no such folder; pass a folder written by save_pretrained (model and feature extractor) "
                            "or a Hugging Face hub id such as MIT/ast-finetuned-audioset-10-10-0.4593")
    source = str(folder) if local else name
    if not local:  # a relative folder that is not there looks like a hub id (org/name): say so before the hub
        print(f"--classifier hf:{name}: no folder {folder.resolve()} here; looking {name} up as a Hugging Face hub id")
    try:
        with nullcontext() if local else _hub_warnings_off():
            config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as error:
        where = "the folder holds no transformers config.json" if local else (
            f"no folder {folder.resolve()} exists here, so {name} was looked up as a Hugging Face hub id, which "
            "failed: not in the Hugging Face cache and the hub not reachable (offline?)")
        raise _refuse(name, f"{where} ({str(error).splitlines()[0][:160]}); pass a folder written by "
                            "save_pretrained" + ("" if local else ", by a path that exists from the working directory "
                                                 "(or absolute), or a hub id while online")) from None
    if config.model_type == "clap":
        from classifiers.clap import load_clap

        return load_clap(name, source, local)
    if config.model_type not in FAMILIES:
        raise _refuse(name, f"a {config.model_type!r} model; hf: explains the audio-classification models of "
                            f"transformers ({', '.join(FAMILIES)}) and CLAP (clap, zero-shot); wrap another model in "
                            "a Classifier of your own (docs: Classifiers, \"Your own classifier\")")
    module, class_name, extractors = FAMILIES[config.model_type]
    try:
        with nullcontext() if local else _hub_warnings_off():
            model = AutoModelForAudioClassification.from_pretrained(source, local_files_only=local)
            extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as error:
        raise _refuse(name, f"the model or its feature extractor does not load ({str(error).splitlines()[0][:160]}); "
                            "save both with save_pretrained into the folder") from None
    if type(extractor).__name__ not in extractors:
        raise _refuse(name, f"its feature extractor is a {type(extractor).__name__}, where the {config.model_type} "
                            f"model reads those of {' or '.join(extractors)}: save the model's own feature extractor "
                            "into the folder with save_pretrained")
    class_names = [str(config.id2label.get(i, f"class {i}")) for i in range(config.num_labels)]
    try:
        classifier = getattr(importlib.import_module(module), class_name)(model, class_names, extractor).eval()
    except ValueError as error:
        raise _refuse(name, str(error)) from None
    classifier.name = f"hf:{name}"
    return classifier


@contextmanager
def _hub_warnings_off() -> Iterator[None]:
    """huggingface_hub's retry warnings (a dozen lines while the hub is unreachable) off: the error says it."""
    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_class_names(flag: str, model_names: list[str], data_names: list[str], names_known: bool = True) -> None:
    """Refuse a given classifier whose classes are not the dataset's: another count or, when ``names_known``
    (an hf: model's ``config.id2label``, a checkpoint's class_names), other names or another order.

    Args:
        flag: the option that gave the classifier, e.g. "--classifier hf:FOLDER" (named in the message).
        model_names: its class names, output i first; data_names: the dataset's, in target order.
    Raises:
        ValueError: the counts differ; or the names differ: the first two of each are shown, with the way to
            map them (an hf: model: set ``config.id2label`` / ``label2id`` to the dataset's names and
            save_pretrained again), or --dataset folder, which needs no labels.
    """
    folder = "explain a folder of recordings with --dataset folder (no labels needed)"
    if len(model_names) != len(data_names):
        raise ValueError(f"{flag} knows {len(model_names)} classes, the dataset has {len(data_names)}; use a model "
                         f"of this dataset's classes, or {folder}")
    if not names_known or list(model_names) == list(data_names):
        return
    count = len(data_names)
    model_first, data_first = (", ".join(map(repr, names[:2])) for names in (model_names, data_names))
    first = f"{model_first}, … where the dataset has {data_first}, …"
    if sorted(model_names) == sorted(data_names):
        raise ValueError(f"{flag} knows the dataset's {count} class names in another order ({first} in target "
                         f"order); use a model whose output i is the dataset's class i, or {folder}")
    default = all(name == f"LABEL_{i}" for i, name in enumerate(model_names))
    why = " (transformers' default names: its config.id2label was never set)" if default else ""
    fix = "use a checkpoint trained on this dataset's classes"
    if flag.startswith("--classifier hf:"):
        fix = ("if its outputs are the dataset's classes in target order, set model.config.id2label = "
               "dict(enumerate(names)) and model.config.label2id = {name: i for i, name in enumerate(names)}, names "
               "being the dataset's class names in target order, and save_pretrained again")
    raise ValueError(f"{flag} knows {count} classes, as many as the dataset, but other names{why}: {first}; {fix}; "
                     f"or {folder}")


def weights_key(classifier: Classifier) -> str:
    """16 hex digits of SHA-256 over the model's tensors (names, shapes, bytes) and its feature settings:
    the pretrained model's identity in the cache keys of what is trained on it."""
    digest = hashlib.sha256(repr(sorted(classifier.extractor_settings.items())).encode())
    for key, tensor in classifier.model.state_dict().items():
        digest.update(f"{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]
