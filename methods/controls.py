"""Control rows (protocol §3): maps that explain nothing, in every table by default,
so that a reader sees what a method adds over keeping everything, over chance and over "loud bins".

- ``all-ones``: keeps everything: FF ≈ the classifier's confidence and Fid-In = 1. A method that
  only matches it on AI/FF/Fid-In explains nothing.
- ``random``: uniform noise U(0, 1) per bin, seeded per sample (mean mask 0.5).
- ``energy``: the input's own features X (log1p magnitudes; on a log scale below zero, zero), divided by
  their maximum: the loud bins.

Controls are compared with the best method in the significance marks but never chosen as the best
(``control = True``).
"""
from __future__ import annotations

import torch

from classifiers.base import DomainModel
from methods.base import Explainer
from methods.registry import register


@register("all-ones")
class AllOnesExplainer(Explainer):
    """Mask of ones on the input grid, (B, T, F)."""

    returns_mask = True
    control = True

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(features)


@register("random")
class RandomExplainer(Explainer):
    """Uniform noise mask U(0, 1), (B, T, F), drawn from torch's generator (the harness seeds it per sample)."""

    returns_mask = True
    control = True

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(features)


@register("energy")
class EnergyExplainer(Explainer):
    """The input features X (B, T, F) clamped at 0 (log1p magnitudes are ≥ 0 already; a log mel
    filterbank's quiet bins, below 0, become 0), or in the waveform domain the samples' magnitude |X|,
    as the map (``to_mask`` divides by the maximum)."""

    control = True

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return features.detach().abs() if model.domain.name == "waveform" else features.detach().clamp_min(0.0)
