"""Gradient-based saliency maps via Captum (protocol §3).

Every method explains the logit of the target class with respect to the input
features of the domain: X = log1p|STFT| (B, T, 513), through the differentiable
STFT→Mel wrapper, in the listenable domain; the log-mel input (B, T, 80) in the
mel domain. Each returns a raw map of the input's shape; the harness turns it
into a mask (abs, per-sample max).
"""
from __future__ import annotations

import numpy as np
import torch
from captum.attr import GradientShap, GuidedBackprop, IntegratedGradients, Saliency

from classifiers.base import DomainModel
from methods.base import Explainer, differentiable_input
from methods.registry import register


def chunks(count: int, size: int) -> list[slice]:
    """Consecutive slices of ``size`` rows covering 0..count−1: index any device's tensors without
    an index tensor (a CPU index of a CUDA tensor would copy it to the device every chunk)."""
    return [slice(start, start + size) for start in range(0, count, size)]


@register("saliency")
class SaliencyExplainer(Explainer):
    """Saliency (Simonyan et al., 2014): |∂ logit_c / ∂X|, Captum ``Saliency``."""

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return Saliency(model).attribute(differentiable_input(features), target=target, abs=True)


@register("smoothgrad")
class SmoothGradExplainer(Explainer):
    """SmoothGrad (Smilkov et al., 2017) on non-negative inputs (§3).

    Mean over ``n_samples`` noisy copies X + |ε|, ε ~ N(0, σ²) drawn afresh for
    every copy, σ = ``noise_level`` · (max X − min X) per sample, of each copy's
    saliency map divided by its own max. Copies are processed ``internal_batch_size``
    inputs at a time to bound memory.
    """

    def __init__(self, n_samples: int = 50, noise_level: float = 0.15, internal_batch_size: int = 16):
        super().__init__(n_samples=n_samples, noise_level=noise_level, internal_batch_size=internal_batch_size)

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n_samples, level, chunk = (self.hyperparameters[k] for k in ("n_samples", "noise_level", "internal_batch_size"))
        flat = features.flatten(1)
        sigma = (level * (flat.amax(1) - flat.amin(1))).view(-1, 1, 1)
        saliency = Saliency(model)
        total = torch.zeros_like(features)
        for sample in range(n_samples):
            for rows in chunks(len(features), chunk):
                noisy = features[rows] + (torch.randn_like(features[rows]) * sigma[rows]).abs()
                grad = saliency.attribute(differentiable_input(noisy), target=target[rows], abs=True)
                total[rows] += grad / grad.flatten(1).amax(1).clamp_min(1e-30).view(-1, 1, 1)
        return total / n_samples


@register("integrated-gradients")
class IntegratedGradientsExplainer(Explainer):
    """Integrated Gradients (Sundararajan et al., 2017), Captum, zero baseline, ``n_steps`` 50."""

    def __init__(self, n_steps: int = 50, internal_batch_size: int = 16):
        super().__init__(n_steps=n_steps, internal_batch_size=internal_batch_size)

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return IntegratedGradients(model).attribute(
            differentiable_input(features), baselines=torch.zeros_like(features), target=target,
            n_steps=self.hyperparameters["n_steps"], internal_batch_size=self.hyperparameters["internal_batch_size"])


@register("guided-backprop")
class GuidedBackpropExplainer(Explainer):
    """Guided Backprop (Springenberg et al., 2015), Captum ``GuidedBackprop``.

    Captum overrides the backward pass of ``nn.ReLU`` modules only: a classifier without them
    (functional ReLU, GELU) would silently give the plain gradient, so it is refused.
    """

    requires = ("relu_modules",)

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return GuidedBackprop(model).attribute(differentiable_input(features), target=target)


@register("shap")
class GradientShapExplainer(Explainer):
    """SHAP via Captum ``GradientShap`` (§3): ``n_baselines`` baselines of |N(0, 1)|,
    ``n_samples`` samples per input, multiplied by the inputs; ``chunk_size`` inputs at a time."""

    def __init__(self, n_baselines: int = 3, n_samples: int = 5, chunk_size: int = 4):
        super().__init__(n_baselines=n_baselines, n_samples=n_samples, chunk_size=chunk_size)

    def attribute(self, model: DomainModel, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        hp = self.hyperparameters
        # Captum draws the interpolation points with NumPy's global generator: seed it from
        # torch's, so that a seeded run is reproducible.
        np.random.seed(int(torch.randint(0, 2**31 - 1, (1,))))
        baselines = torch.randn(hp["n_baselines"], *features.shape[1:], device=features.device).abs()
        shap = GradientShap(model, multiply_by_inputs=True)
        return torch.cat([
            shap.attribute(differentiable_input(features[rows]), baselines=baselines, target=target[rows],
                           n_samples=hp["n_samples"])
            for rows in chunks(len(features), hp["chunk_size"])])
