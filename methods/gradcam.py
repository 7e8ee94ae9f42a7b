"""GradCAM and Guided GradCAM on the classifier's last conv block, via Captum (BENCHMARK.md §3).

The block-6 map (13 × 2 cells for a 5 s clip) is upsampled with nearest-neighbour
interpolation to the grid of the domain (431 × 513 or 431 × 80).
"""
from __future__ import annotations

import torch
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import nn

from benchmark.classifier import DomainModel
from methods.base import Explainer, differentiable_input, register


@register("gradcam")
class GradCAMExplainer(Explainer):
    """|GradCAM| (Selvaraju et al., 2017) of block 6, nearest-upsampled to the input grid, (B, T, F)."""

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cam = LayerGradCam(model, model.classifier.last_conv_block).attribute(differentiable_input(features),
                                                                              target=target)
        return LayerAttribution.interpolate(cam.abs(), tuple(features.shape[1:]), interpolate_mode="nearest").squeeze(1)


class _WithChannel(nn.Module):
    """Wraps a model of (B, T, F) inputs to take (B, 1, T, F): Captum's ``GuidedGradCam``
    upsamples to ``inputs.shape[2:]`` and silently returns an empty tensor without a channel axis."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.model(features.squeeze(1))


@register("guided-gradcam")
class GuidedGradCAMExplainer(Explainer):
    """Guided GradCAM: Captum ``GuidedGradCam`` on block 6 (nearest upsampling) × Guided Backprop, (B, T, F)."""

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        wrapped = _WithChannel(model)
        attribution = GuidedGradCam(wrapped, model.classifier.last_conv_block).attribute(
            differentiable_input(features.unsqueeze(1)), target=target, interpolate_mode="nearest")
        return attribution.squeeze(1)
