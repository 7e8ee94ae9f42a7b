"""Shared fixtures: the real audio in ../shared/data and a small classifier."""
from pathlib import Path

import pytest
import torch

from benchmark.classifier import AudioClassifier
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
def small_classifier() -> AudioClassifier:
    """Untrained width-4 CNN14 (50 classes), eval mode, frozen, seeded."""
    torch.manual_seed(0)
    return AudioClassifier(50, width=4).eval().requires_grad_(False)
