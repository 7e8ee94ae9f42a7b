"""Trained CNN14 classifiers from a file: this benchmark's cache format, or SpeechBrain's L-MAC recipe (paper §4);
and seeded paper-size modules in SpeechBrain's format, for the bench and the tests."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from classifiers.cnn14 import CNN14Classifier
from foundation.checkpoints import CheckpointError, content_key, load_state, read_state_dict

FLAG = "--classifier-checkpoint"


def load_classifier_checkpoint(path: str | os.PathLike,
                               cache_dir: Path | None = None) -> tuple[CNN14Classifier, str, list[str] | None]:
    """A trained CNN14 classifier, in one of two formats.

    - a ``classifier-<key>.pt`` of this benchmark's cache, with its ``.json`` beside it
      (width and class names recorded);
    - a SpeechBrain directory (the L-MAC recipe's ``embedding_model.ckpt``, a
      ``Cnn14(mel_bins=80, emb_dim=2048, return_reps=True)`` state dict, and
      ``classifier.ckpt``, a ``Linear(2048, n_classes)``); the width is read from the
      tensors, the class names are unknown (None).

    Returns:
        the classifier (eval mode; class names "class 0", … when unknown), a key of the weights'
        content (SHA-256 of the files, remembered in ``cache_dir``), the class names or None.
    Raises:
        CheckpointError: neither format is found at ``path``, or a file is unreadable or unsafe.
        ValueError: a tensor's shape does not fit (the message names it).
    """
    path = Path(path)
    if path.is_dir():
        embedding, head = path / "embedding_model.ckpt", path / "classifier.ckpt"
        if not embedding.is_file() or not head.is_file():
            raise CheckpointError(f"{FLAG} {path}: the folder holds no SpeechBrain embedding_model.ckpt and "
                                  "classifier.ckpt; pass the L-MAC recipe's checkpoint folder")
        embedding_state, head_state = read_state_dict(embedding, FLAG), read_state_dict(head, FLAG)
        if "conv_block1.conv1.weight" not in embedding_state or "weight" not in head_state:
            raise CheckpointError(f"{FLAG} {path}: not a SpeechBrain Cnn14 / Linear checkpoint (no "
                                  "conv_block1.conv1.weight in embedding_model.ckpt or no weight in classifier.ckpt)")
        classifier = CNN14Classifier([f"class {i}" for i in range(head_state["weight"].shape[0])],
                                     width=embedding_state["conv_block1.conv1.weight"].shape[0])
        load_state(classifier.embedding_model, embedding, FLAG)
        load_state(classifier.head, head, FLAG)
        return classifier.eval(), content_key([embedding, head], cache_dir, format="speechbrain"), None
    description = path.with_suffix(".json")
    if not path.is_file():
        raise CheckpointError(f"{FLAG} {path}: no such file or folder; pass a classifier-*.pt file from the "
                              "checkpoint cache (--cache-dir) or a SpeechBrain folder with embedding_model.ckpt and "
                              "classifier.ckpt")
    if not description.is_file():
        raise CheckpointError(f"{FLAG} {path}: its description {description.name} is missing beside it (width and "
                              "class names); pass a classifier-*.pt from the checkpoint cache with its .json, or a "
                              "SpeechBrain folder")
    try:
        config = json.loads(description.read_text())["config"]
        class_names, width = list(config["class_names"]), int(config["width"])
    except (ValueError, KeyError, TypeError):
        raise CheckpointError(f"{FLAG} {path}: {description.name} is not a classifier description of this "
                              "benchmark (no config with class_names and width)") from None
    classifier = CNN14Classifier(class_names, width=width)
    load_state(classifier, path, FLAG)
    return classifier.eval(), content_key([path], cache_dir, format="benchmark", class_names=class_names), class_names


def speechbrain_paper_checkpoints(folder: Path, n_classes: int, seed: int = 0) -> Path:
    """Seeded paper-size modules of SpeechBrain's L-MAC recipe, saved in its format in ``folder``
    (if not there yet): ``embedding_model.ckpt`` (``Cnn14(mel_bins=80, emb_dim=2048)``),
    ``classifier.ckpt`` (``Linear(2048, n_classes)``) and ``psi_model.ckpt``
    (``CNN14PSI_stft(dim=2048)``), BatchNorm statistics drawn from U(0.5, 1.5).

    Returns ``folder``. Raises ImportError without speechbrain.
    """
    from speechbrain.lobes.models.Cnn14 import Cnn14, CNN14PSI_stft

    if all((folder / name).is_file() for name in ("embedding_model.ckpt", "classifier.ckpt", "psi_model.ckpt")):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    modules = {"embedding_model": Cnn14(mel_bins=80, emb_dim=2048, return_reps=True),
               "classifier": nn.Linear(2048, n_classes), "psi_model": CNN14PSI_stft(dim=2048)}
    for name, module in modules.items():
        for buffer_name, buffer in module.named_buffers():
            if "running" in buffer_name:
                buffer.uniform_(0.5, 1.5)
        torch.save(module.state_dict(), folder / f"{name}.ckpt")
    return folder
