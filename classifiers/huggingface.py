"""Pretrained ``transformers`` audio classifiers: ``--classifier hf:PATH_OR_ID``.

PATH_OR_ID is a folder written by ``save_pretrained`` (the model and its feature extractor) or a
hub id, read through the Hugging Face cache (downloaded there by ``transformers`` when online).
Class names come from the model's ``config.id2label``. The benchmark explains the predicted class,
so a pretrained model needs no labels: ``--dataset folder`` of unlabelled recordings works.

Supported: Audio Spectrogram Transformer models (``ASTForAudioClassification`` with
``ASTFeatureExtractor``), whose features the benchmark computes differentiably
(``classifiers.ast``). Another architecture needs its features in torch: wrap it in a
``Classifier`` of your own.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from classifiers.ast import ASTClassifier


def _refuse(name: str, why: str) -> ValueError:
    return ValueError(f"--classifier hf:{name}: {why}")


def load(name: str) -> ASTClassifier:
    """The model and feature extractor of folder or hub id ``name``, in eval mode.

    Raises:
        ValueError: a missing folder; one without a transformers config, model or feature extractor;
            a model that is not an audio-classification AST (each message names the fix).
    """
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    folder = Path(name).expanduser()
    local = folder.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1
    if local and not folder.is_dir():
        raise _refuse(name, "no such folder; pass a folder written by save_pretrained (model and feature extractor) "
                            "or a Hugging Face hub id such as MIT/ast-finetuned-audioset-10-10-0.4593")
    source = str(folder) if local else name
    try:
        config = AutoConfig.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as error:
        where = "the folder holds no transformers config.json" if local else \
            "not in the Hugging Face cache and not reachable on the hub"
        raise _refuse(name, f"{where} ({str(error).splitlines()[0][:160]}); pass a folder written by "
                            "save_pretrained") from None
    if config.model_type != "audio-spectrogram-transformer":
        raise _refuse(name, f"a {config.model_type!r} model; hf: explains audio-classification Audio Spectrogram "
                            "Transformers (ASTForAudioClassification with ASTFeatureExtractor), whose features the "
                            "benchmark computes differentiably; wrap another model in a Classifier of your own "
                            "(README, \"Your own classifier\")")
    try:
        model = AutoModelForAudioClassification.from_pretrained(source, local_files_only=local)
        extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as error:
        raise _refuse(name, f"the model or its feature extractor does not load ({str(error).splitlines()[0][:160]}); "
                            "save both with save_pretrained into the folder") from None
    if type(extractor).__name__ != "ASTFeatureExtractor":
        raise _refuse(name, f"its feature extractor is a {type(extractor).__name__}, not an ASTFeatureExtractor")
    class_names = [str(config.id2label.get(i, f"class {i}")) for i in range(config.num_labels)]
    classifier = ASTClassifier(model, class_names, extractor).eval()
    classifier.name = f"hf:{name}"
    return classifier


def weights_key(classifier: ASTClassifier) -> str:
    """16 hex digits of SHA-256 over the model's tensors (names, shapes, bytes) and its feature settings:
    the pretrained model's identity in the cache keys of what is trained on it."""
    digest = hashlib.sha256(repr(sorted(classifier.fbank_settings.items())).encode())
    for key, tensor in classifier.model.state_dict().items():
        digest.update(f"{key}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]
