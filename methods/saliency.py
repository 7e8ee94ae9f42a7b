"""Saliency (Simonyan et al., 2014) via Captum: |∂ logit_c / ∂X| (BENCHMARK.md §3)."""
from __future__ import annotations

import torch
from captum.attr import Saliency

from benchmark.classifier import DomainModel
from methods.base import Explainer, register


@register("saliency")
class SaliencyExplainer(Explainer):
    """Absolute gradient of the explained logit w.r.t. the input features, (B, T, F)."""

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return Saliency(model).attribute(features.clone().requires_grad_(), target=target, abs=True)
