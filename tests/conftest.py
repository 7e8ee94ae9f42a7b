"""Shared fixtures: the real audio of the shared data folder beside the repository, and a small classifier."""
from pathlib import Path

import pytest
import torch

from classifiers.cnn14 import CNN14Classifier
from datasets.audio import load_clip

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root."""
DATA = ROOT.parent / "shared" / "data"
ESC50 = DATA / "esc50"


@pytest.fixture(scope="session")
def clips() -> torch.Tensor:
    """Two real ESC-50 clips (different classes), (2, 80000) at 16 kHz."""
    names = ["4-102844-A-49.wav", "4-102871-A-42.wav"]
    return torch.stack([load_clip(ESC50 / "audio" / name) for name in names])


@pytest.fixture(scope="session")
def small_classifier() -> CNN14Classifier:
    """Untrained width-4 CNN14 (50 classes), eval mode, frozen, seeded."""
    torch.manual_seed(0)
    return CNN14Classifier([f"class {i}" for i in range(50)], width=4).eval().requires_grad_(False)


ESC50_CLASSES = [category for _, category in sorted({(int(row.split(",")[2]), row.split(",")[3]) for row in
                                                     (ESC50 / "meta" / "esc50.csv").read_text().splitlines()[1:]})]
"""The shared copy's class names, in target order (the benchmark's class names of it)."""


def save_tiny_ast(folder: Path, class_names: list[str], sampling_rate: int = 16000, max_length: int = 512) -> Path:
    """A tiny untrained ``ASTForAudioClassification`` and its ``ASTFeatureExtractor`` written with
    ``save_pretrained`` to ``folder`` (offline: built from a config, nothing downloaded)."""
    from transformers import ASTConfig, ASTFeatureExtractor, ASTForAudioClassification

    torch.manual_seed(0)
    config = ASTConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                       max_length=max_length, num_mel_bins=128, num_labels=len(class_names),
                       id2label=dict(enumerate(class_names)), label2id={n: i for i, n in enumerate(class_names)})
    ASTForAudioClassification(config).save_pretrained(folder)
    ASTFeatureExtractor(max_length=max_length, sampling_rate=sampling_rate).save_pretrained(folder)
    return folder
