"""GradCAM and Guided GradCAM on the classifier's CAM layer, via Captum (paper §4.1).

The layer is the one the classifier contract names (``Classifier.cam_layer``: CNN14's block 6,
13 × 2 cells for a 5 s clip; the AST's patch grid). Its map is upsampled with nearest-neighbour
interpolation to the grid of the domain (431 × 513 on the STFT grid, or the classifier's features).
"""
from __future__ import annotations

import torch
from captum.attr import GuidedGradCam, LayerAttribution, LayerGradCam
from torch import nn

from classifiers.base import DomainModel
from methods.base import Explainer, differentiable_input
from methods.registry import register


@register("gradcam")
class GradCAMExplainer(Explainer):
    """|GradCAM| (Selvaraju et al., 2017) of the CAM layer, nearest-upsampled to the input grid, (B, T, F)."""

    requires = ("cam_layer",)

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cam = LayerGradCam(model, model.classifier.cam_layer()).attribute(differentiable_input(features),
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
    """Guided GradCAM: Captum ``GuidedGradCam`` on the CAM layer (nearest upsampling) × Guided Backprop, (B, T, F)."""

    requires = ("cam_layer", "relu_modules")

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        wrapped = _WithChannel(model)
        attribution = GuidedGradCam(wrapped, model.classifier.cam_layer()).attribute(
            differentiable_input(features.unsqueeze(1)), target=target, interpolate_mode="nearest")
        return attribution.squeeze(1)
