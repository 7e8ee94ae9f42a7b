"""Robustness of an explanation to small perturbations of its input, as Quantus defines it (Hedström et al.,
JMLR 2023, "robustness" category): Max-Sensitivity and Avg-Sensitivity (Yeh et al., NeurIPS 2019; Quantus
``MaxSensitivity``, ``AvgSensitivity``), Relative Input Stability and Relative Output Stability (Agarwal et
al., 2022, arXiv 2203.06877; Quantus ``RelativeInputStability``, ``RelativeOutputStability``). Lower is
better for all four. Definitions: docs/robustness.md.

How they reach the tables. Unlike the other metrics they need the explainer again: a run with
``--robustness`` perturbs each evaluated input D times (``perturb_features``), re-explains every perturbed
input with the same method, the same explained class and the same per-sample seed, and computes each draw's
values (``draw_values``); ``benchmark.robustness`` does this and hands the batch's draws to the metrics as
``MetricInputs.robustness`` (a ``RobustnessDraws``). The four metrics registered here only aggregate the
draws (max or mean over them); they carry ``needs_robustness=True`` (``metrics.base.Metric``), so that
``benchmark.explanations.score`` computes them, and their columns exist, only with ``--robustness``.

A draw whose perturbed input changes the predicted class: Max- and Avg-Sensitivity count it (Quantus'
default, ``return_nan_when_prediction_changes=False``; Yeh et al.'s sensitivity has no condition); RIS and
ROS set it to NaN (Quantus' default, ``return_nan_when_prediction_changes=True``) and take the maximum over
the other draws: Agarwal et al.'s maximum over perturbations that keep the prediction. (Quantus then takes
``np.max`` over all draws, so one changed draw makes its whole sample NaN; here the sample is NaN only when
every draw changed.) ``Rob-changed`` (``per_sample.csv``) counts each sample's changed draws.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from metrics.base import Metric, register_metric

DEFAULT_DRAWS = 10
"""Perturbed copies of each input (``--robustness-draws``)."""
DEFAULT_LEVEL = 0.1
"""Standard deviation of the noise as a fraction of the input's own standard deviation (``--robustness-level``)."""
EPS_MIN = 1e-6
"""Quantus' ``eps_min`` of RIS and ROS: replaces zeros of e and x in the relative changes and a zero denominator."""
SOURCE = "docs/robustness.md (Quantus, Hedström et al., JMLR 2023)"


def perturb_features(features: torch.Tensor, level: float, generator: torch.Generator) -> torch.Tensor:
    """One perturbed copy of each input: x′ = x + ε, ε ~ N(0, (level·σ_x)²) i.i.d. per element, σ_x the standard
    deviation of the sample's own elements (docs/robustness.md).

    A sample without negative elements (log1p magnitudes: the listenable and CNN14's mel features) is clamped
    below at 0, so that it stays a valid input; signed inputs (waveform samples, other classifiers' log-mel
    features) are not clamped. The noise is drawn on the CPU from ``generator``, then moved to the features'
    device, so that a draw is the same on every device.

    Args:
        features: (B, ...) float inputs, e.g. (B, T, F) a domain's features or (B, N) waveforms.
        level: the noise's standard deviation as a fraction of σ_x, > 0 and finite.
        generator: a CPU ``torch.Generator``; each call draws B·(elements per sample) normal values from it.
    Returns:
        (B, ...) like ``features`` (same dtype and device).
    Raises:
        ValueError: ``level`` is not positive and finite.
    """
    if not (math.isfinite(level) and level > 0):
        raise ValueError(f"level {level}: must be a positive finite fraction of the input's standard deviation")
    flat = features.detach().flatten(1)
    sigma = flat.double().std(dim=1, unbiased=False).to(features.dtype).view(-1, *[1] * (features.dim() - 1))
    noise = torch.randn(features.shape, generator=generator, dtype=torch.float64).to(features.device, features.dtype)
    perturbed = features.detach() + level * sigma * noise
    non_negative = (flat.amin(dim=1) >= 0).view(-1, *[1] * (features.dim() - 1))
    return torch.where(non_negative, perturbed.clamp_min(0.0), perturbed)


def perturb_rows(values: torch.Tensor, level: float, generators: list[torch.Generator]) -> torch.Tensor:
    """``perturb_features`` of each row of ``values`` (B, ...) on its own, row k drawn from ``generators[k]``, so a
    sample's draw does not depend on its batch. Returns (B, ...), the same dtype and device."""
    return torch.cat([perturb_features(values[k: k + 1], level, g) for k, g in enumerate(generators)])


def _norm(values: torch.Tensor) -> torch.Tensor:
    """(B,) L2 norm over every element but the batch's (Quantus' ``fro_norm`` of a flattened map)."""
    return values.double().flatten(1).norm(dim=1)


def _relative_change(a: torch.Tensor, a_perturbed: torch.Tensor, eps: float) -> torch.Tensor:
    """(B,) ‖(a − a′) / a‖₂ with the zeros of a replaced by ``eps`` (Quantus' RIS and ROS numerators)."""
    a, a_perturbed = a.double(), a_perturbed.double()
    return _norm((a - a_perturbed) / (a + (a == 0) * eps))


def sensitivity(e: torch.Tensor, e_perturbed: torch.Tensor) -> torch.Tensor:
    """One draw of Max- and Avg-Sensitivity: ‖e − e′‖₂ / ‖e‖₂ over the whole map (Quantus' defaults:
    ``difference``, ``fro_norm`` numerator and denominator, no normalisation; Yeh et al. 2019).

    Args:
        e, e_perturbed: (B, ...) explanations of x and x′ on the same grid.
    Returns:
        (B,) float64 in [0, ∞); NaN where e is all zero (an invalid map).
    """
    norm = _norm(e)
    return torch.where(norm > 0, _norm(e - e_perturbed) / norm.clamp_min(1e-300), torch.nan)


def relative_input_stability(x: torch.Tensor, x_perturbed: torch.Tensor, e: torch.Tensor, e_perturbed: torch.Tensor,
                             eps: float = EPS_MIN) -> torch.Tensor:
    """One draw of RIS (Agarwal et al. 2022, Eq. 2; Quantus ``RelativeInputStability``):
    ‖(e − e′)/e‖₂ / max(‖(x − x′)/x‖₂, eps), zeros of e and x replaced by ``eps`` (a zero denominator becomes
    ``eps``, as Quantus).

    Args:
        x, x_perturbed: (B, ...) the input and its perturbed copy.
        e, e_perturbed: (B, ...) their explanations (any grid, the same for both).
    Returns:
        (B,) float64 in [0, ∞).
    """
    denominator = _relative_change(x, x_perturbed, eps)
    return _relative_change(e, e_perturbed, eps) / (denominator + (denominator == 0) * eps)


def relative_output_stability(h: torch.Tensor, h_perturbed: torch.Tensor, e: torch.Tensor, e_perturbed: torch.Tensor,
                              eps: float = EPS_MIN) -> torch.Tensor:
    """One draw of ROS (Agarwal et al. 2022, Eq. 5; Quantus ``RelativeOutputStability``):
    ‖(e − e′)/e‖₂ / ‖h(x) − h(x′)‖₂, h the classifier's logits, zeros of e replaced by ``eps`` and a zero
    denominator by ``eps`` (Quantus).

    Args:
        h, h_perturbed: (B, C) logits on x and x′.
        e, e_perturbed: (B, ...) the explanations of x and x′.
    Returns:
        (B,) float64 in [0, ∞).
    """
    denominator = _norm(h - h_perturbed)
    return _relative_change(e, e_perturbed, eps) / (denominator + (denominator == 0) * eps)


def draw_values(x: torch.Tensor, x_perturbed: torch.Tensor, h: torch.Tensor, h_perturbed: torch.Tensor,
                e: torch.Tensor, e_perturbed: torch.Tensor) -> dict[str, np.ndarray]:
    """Everything one draw gives each sample: "sensitivity", "input_stability", "output_stability" (above) and
    "changed" (1.0 where argmax h′ ≠ argmax h, else 0.0), each (B,) float64. Shapes as in the functions above."""
    return {"sensitivity": sensitivity(e, e_perturbed).cpu().numpy(),
            "input_stability": relative_input_stability(x, x_perturbed, e, e_perturbed).cpu().numpy(),
            "output_stability": relative_output_stability(h, h_perturbed, e, e_perturbed).cpu().numpy(),
            "changed": (h.argmax(1) != h_perturbed.argmax(1)).double().cpu().numpy()}


@dataclass(frozen=True)
class RobustnessDraws:
    """The draws of one batch: each field (B, D) float64 with one column per draw (``draw_values``); a row of
    NaN is a sample not evaluated (beyond ``--robustness-samples``)."""

    sensitivity: np.ndarray
    input_stability: np.ndarray
    output_stability: np.ndarray
    changed: np.ndarray

    @classmethod
    def stack(cls, draws: list[dict[str, np.ndarray]], batch_size: int) -> RobustnessDraws:
        """The draws (one or more ``draw_values`` of the batch's first b ≤ ``batch_size`` samples, b the same
        for all) as (batch_size, len(draws)) arrays, NaN in the rows of the samples not evaluated."""
        fields = {}
        for name in ("sensitivity", "input_stability", "output_stability", "changed"):
            values = np.stack([d[name] for d in draws], axis=1)
            padded = np.full((batch_size, len(draws)), np.nan)
            padded[: len(values)] = values
            fields[name] = padded
        return cls(**fields)

    @classmethod
    def empty(cls, batch_size: int, draws: int) -> RobustnessDraws:
        """A batch none of whose samples is evaluated: every value NaN, (batch_size, draws)."""
        return cls(*(np.full((batch_size, draws), np.nan) for _ in range(4)))

    def unchanged(self, values: np.ndarray) -> np.ndarray:
        """``values`` (B, D) with the draws that changed the predicted class set to NaN."""
        return np.where(self.changed == 1, np.nan, values)


def _largest(values: np.ndarray) -> np.ndarray:
    """(B,) the largest non-NaN value of each row; NaN when the row has none (no warning)."""
    return np.fmax.reduce(values, axis=1)


for _metric in (
    Metric("Max-Sens", False, "Max-Sensitivity (Yeh et al. 2019): max over the draws of ‖e′ − e‖₂/‖e‖₂, e the mask, "
                              "x′ = x + N(0, (level·σ_x)²); every draw counts; in [0, ∞); with --robustness",
           lambda inputs: inputs.robustness.sensitivity.max(axis=1), SOURCE + "; Yeh et al., NeurIPS 2019",
           column="added", needs_robustness=True),
    Metric("Avg-Sens", False, "Avg-Sensitivity: the mean of the same over the draws; in [0, ∞); with --robustness",
           lambda inputs: inputs.robustness.sensitivity.mean(axis=1), SOURCE + "; Yeh et al., NeurIPS 2019",
           column="added", needs_robustness=True),
    Metric("RIS", False, "Relative Input Stability (Agarwal et al. 2022): max over the draws that keep the predicted "
                         "class of ‖(e − e′)/e‖₂ / max(‖(x − x′)/x‖₂, 1e-6), zeros of e and x taken as 1e-6 "
                         "(Quantus); in [0, ∞); with --robustness",
           lambda inputs: _largest(inputs.robustness.unchanged(inputs.robustness.input_stability)),
           SOURCE + "; Agarwal et al., arXiv 2203.06877", column="added", needs_robustness=True),
    Metric("ROS", False, "Relative Output Stability: the same with ‖h(x) − h(x′)‖₂ of the logits h as the "
                         "denominator; in [0, ∞); with --robustness",
           lambda inputs: _largest(inputs.robustness.unchanged(inputs.robustness.output_stability)),
           SOURCE + "; Agarwal et al., arXiv 2203.06877", column="added", digits=1, needs_robustness=True),
    Metric("Rob-changed", None, "draws whose perturbed input changed the predicted class (excluded from RIS and "
                                "ROS); with --robustness",
           lambda inputs: inputs.robustness.changed.sum(axis=1), SOURCE, column="per-sample", digits=0,
           needs_robustness=True),
):
    register_metric(_metric)

