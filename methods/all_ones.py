"""The all-ones mask: the reference row of the tables (BENCHMARK.md §3).

Keeping everything gives FF ≈ the classifier's confidence and Fid-In = 1; a method
that only matches it on AI/FF/Fid-In explains nothing.
"""
from __future__ import annotations

import torch

from benchmark.classifier import DomainModel
from methods.base import Explainer, register


@register("all-ones")
class AllOnesExplainer(Explainer):
    """Mask of ones on the input grid, (B, T, F)."""

    returns_mask = True

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(features)
