"""BCE-clean: how close a listenable mask is to the binarised clean spectrogram (protocol §4).

The binarised clean spectrogram O = 1[X_clean ≥ 0.35 · max X_clean] is L-MAC FT's
guidance target; the benchmark reports, for every listenable mask, the BCE of the
mask against it (lower is closer).
"""
from __future__ import annotations

import torch

from metrics.base import Metric, MetricInputs, nan_values, register_metric


def binarised_spectrogram(features: torch.Tensor, threshold: float = 0.35) -> torch.Tensor:
    """O = 1[X ≥ threshold · max X] per sample (§4), (B, T, F) bool from log1p magnitudes (B, T, F)."""
    return features >= threshold * features.flatten(1).amax(1).view(-1, 1, 1)


def clean_spectrogram_bce(mask: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample BCE (B,) float, in nats, of a mask (B, T_m, F) in [0, 1] against the binarised
    clean spectrogram ``target`` = ``binarised_spectrogram(X_clean)`` (B, T ≥ T_m, F) bool;
    lower is closer. The mask is clamped to [1e-7, 1 − 1e-7]."""
    clamped = mask.clamp(1e-7, 1 - 1e-7)  # BCE with a binary target: −log of the probability of the target
    return -torch.where(target[:, : mask.shape[1]], clamped, 1 - clamped).log().flatten(1).mean(1)


def _bce_clean(inputs: MetricInputs) -> torch.Tensor:
    return nan_values(inputs) if inputs.clean_target is None else clean_spectrogram_bce(inputs.mask,
                                                                                        inputs.clean_target)


register_metric(Metric(
    "BCE-clean", False, "BCE (nats) of a listenable mask against the binarised clean spectrogram 1[X_clean ≥ "
    "0.35·max X_clean], L-MAC FT's guidance target; NaN in the mel domain", _bce_clean,
    "L-MAC paper §3 (fine-tuning); docs/protocol.md §4", column="note"))
