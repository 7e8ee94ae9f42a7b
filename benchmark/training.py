"""Training of the CNN14 classifier on the training split, cached by configuration (§2, §6)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tqdm import tqdm

from benchmark.classifier import AudioClassifier
from benchmark.frontend import log1p_mel, stft


def mel_features(waveforms: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(N, samples) waveforms → (N, T, 80) log1p mel features, computed in batches."""
    return torch.cat([log1p_mel(stft(chunk)) for chunk in waveforms.split(batch_size)])


@torch.no_grad()
def accuracy(classifier: AudioClassifier, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> float:
    """Top-1 accuracy in [0, 1] of ``classifier`` (eval mode) on log1p mel features (N, T, 80)."""
    classifier.eval()
    predictions = torch.cat([classifier(chunk).argmax(1) for chunk in features.split(batch_size)])
    return (predictions == labels.to(predictions.device)).float().mean().item()


def augment(waveforms: torch.Tensor, generator: torch.Generator, max_attenuation_db: float = 20.0,
            n_masks: int = 2, max_frames: int = 40, max_bands: int = 10) -> torch.Tensor:
    """Training augmentation → log1p mel features (B, T, 80).

    Random circular time shift and random attenuation (0 to ``max_attenuation_db`` dB)
    of the waveform (B, N), then SpecAugment (Park et al., 2019): ``n_masks`` time masks
    of up to ``max_frames`` frames and ``n_masks`` frequency masks of up to
    ``max_bands`` mel bands, set to zero.
    """
    batch = len(waveforms)
    shifts = torch.randint(0, waveforms.shape[1], (batch,), generator=generator)
    shifted = torch.stack([w.roll(int(s)) for w, s in zip(waveforms, shifts)])
    gain = 10 ** (-torch.rand(batch, 1, generator=generator) * max_attenuation_db / 20)
    features = log1p_mel(stft(shifted * gain.to(waveforms.device)))
    frames, bands = features.shape[1:]
    keep = torch.ones_like(features)
    for _ in range(n_masks):
        for axis, size, width in ((1, frames, max_frames), (2, bands, max_bands)):
            widths = torch.randint(0, width + 1, (batch,), generator=generator)
            starts = (torch.rand(batch, generator=generator) * (size - widths)).long()
            positions = torch.arange(size).view(1, -1)
            inside = (positions >= starts.view(-1, 1)) & (positions < (starts + widths).view(-1, 1))
            keep = keep * (~inside).float().to(features.device).unsqueeze(3 - axis)
    return features * keep


def train_classifier(
    classifier: AudioClassifier,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> dict:
    """Train in place with Adam and cross-entropy; keep the epoch with the best validation accuracy.

    Args:
        train: (waveforms (N, samples), labels (N,)) on the model's device; batches are
            augmented by ``augment``.
        valid: (log1p mel features (N, T, 80), labels (N,)).
        epochs, lr, batch_size, seed: schedule.
    Returns:
        a log: per-epoch training loss and validation accuracy, and the best epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    waveforms, labels = train
    best = (-1.0, 0, copy.deepcopy(classifier.state_dict()))
    history = []
    progress = tqdm(range(epochs), desc="train classifier", unit="epoch")
    for epoch in progress:
        classifier.train()
        total = 0.0
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            loss = F.cross_entropy(classifier(augment(waveforms[batch], generator)), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        valid_accuracy = accuracy(classifier, *valid)
        history.append({"epoch": epoch + 1, "loss": total / len(labels), "valid_accuracy": valid_accuracy})
        if valid_accuracy > best[0]:
            best = (valid_accuracy, epoch + 1, copy.deepcopy(classifier.state_dict()))
        progress.set_postfix(loss=f"{total / len(labels):.3f}", valid_acc=f"{valid_accuracy:.2f}")
    classifier.load_state_dict(best[2])
    classifier.eval()
    return {"history": history, "best_epoch": best[1], "best_valid_accuracy": best[0]}
