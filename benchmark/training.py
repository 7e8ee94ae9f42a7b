"""Training of a classifier of the contract (CNN14, AST, yours) on the training split (paper §4)."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from tqdm import tqdm

from classifiers.base import Classifier
from foundation import distributed
from foundation.precision import autocast


@torch.no_grad()
def classifier_features(classifier: Classifier, waveforms: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """(N, samples) waveforms → the classifier's features (N, T, F) (CNN14: log1p mel, F = 80), in batches."""
    return torch.cat([classifier.features(chunk) for chunk in waveforms.split(batch_size)])


@torch.no_grad()
def accuracy(classifier: Classifier, features: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> float:
    """Top-1 accuracy in [0, 1] of ``classifier`` (eval mode) on its features (N, T, F)."""
    classifier.eval()
    predictions = torch.cat([classifier(chunk).argmax(1) for chunk in features.split(batch_size)])
    return (predictions == labels.to(predictions.device)).float().mean().item()


def train_classifier(
    classifier: Classifier,
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    precision: str = "fp32",
) -> dict:
    """Train in place with Adam and cross-entropy; keep the epoch with the best validation accuracy.

    Args:
        train, valid: (the classifier's features (N, T, F), labels (N,)) on the model's device.
        epochs, lr, batch_size, seed: schedule (random circular time shifts augment the batches).
            In a torchrun launch every rank trains its share of each batch with DDP
            (``distributed.epoch_batches``, ``distributed.parallel``).
        precision: "fp32" or "bf16" (forward passes under autocast, ``foundation.precision``).
    Returns:
        a log: per-epoch training loss and validation accuracy, and the best epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr)
    features, labels = train
    best = (-1.0, 0, copy.deepcopy(classifier.state_dict()))
    history = []
    progress = tqdm(range(epochs), desc="train classifier", unit="epoch")
    current = distributed.ranks()
    network = distributed.parallel(classifier, current)
    for epoch in progress:
        classifier.train()
        total = torch.zeros((), dtype=torch.float64, device=labels.device)  # summed on the device: no sync per step
        seen = 0
        for batch in distributed.epoch_batches(len(labels), batch_size, generator, epoch, seed, current):
            shifts = torch.randint(0, features.shape[1], (len(batch),), generator=generator)
            x = torch.stack([features[i].roll(int(s), dims=0) for i, s in zip(batch.tolist(), shifts)])
            with autocast(labels.device, precision):
                loss = F.cross_entropy(network(x), labels[batch.to(labels.device)])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.detach().double() * len(batch)
            seen += len(batch)
        mean_loss = total.item() / seen  # this rank's batches
        valid_accuracy = accuracy(classifier, *valid)
        history.append({"epoch": epoch + 1, "loss": mean_loss, "valid_accuracy": valid_accuracy})
        if valid_accuracy > best[0]:
            best = (valid_accuracy, epoch + 1, copy.deepcopy(classifier.state_dict()))
        progress.set_postfix(loss=f"{mean_loss:.3f}", valid_acc=f"{valid_accuracy:.2f}")
    classifier.load_state_dict(best[2])
    classifier.eval()
    return {"history": history, "best_epoch": best[1], "best_valid_accuracy": best[0]}
