"""Deletion and insertion curves: faithfulness at matched sparsity (after RISE,
Petsiuk et al. 2018). Every method keeps (insertion) or removes (deletion) the same share k of
the bins, those its map ranks first, so a dense map gains nothing from keeping more of the input.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from metrics.base import Metric, register_metric

CURVE_FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50)
"""Shares k of the mask's bins kept (insertion) or removed (deletion)."""


def curve_columns(kind: str) -> list[str]:
    """Per-sample column names of one curve, e.g. "Ins@1%" … "Ins@50%" (kind "Ins" or "Del")."""
    return [f"{kind}@{round(100 * k)}%" for k in CURVE_FRACTIONS]


def rank_bins(mask: torch.Tensor, seeds: list[int]) -> torch.Tensor:
    """The bins of each map, most relevant first, ties broken at random.

    Args:
        mask: (B, T_m, F) map (any real values; larger = more relevant).
        seeds: one seed per sample: equal values keep the order of a seeded random permutation,
            so an all-equal map (all-ones) ranks its bins at random.
    Returns:
        (B, T_m·F) long: flat bin indices on the mask's device.
    """
    rankings = []
    for values, seed in zip(mask.flatten(1), seeds):
        permutation = torch.randperm(values.numel(), generator=torch.Generator().manual_seed(seed)).to(mask.device)
        rankings.append(permutation[torch.argsort(values[permutation], descending=True, stable=True)])
    return torch.stack(rankings)


def first_bins(ranking: torch.Tensor, fraction: float, shape: torch.Size) -> torch.Tensor:
    """Binary masks (B, T_m, F) float of 0 and 1 keeping the ⌈fraction·n⌉ first bins of ``ranking``
    (B, n = T_m·F), ``fraction`` in (0, 1]."""
    chosen = torch.zeros(ranking.shape, device=ranking.device)
    chosen.scatter_(1, ranking[:, : math.ceil(fraction * ranking.shape[1])], 1.0)
    return chosen.view(shape)


def curve_area(probabilities: np.ndarray) -> np.ndarray:
    """Normalised area under curves sampled at ``CURVE_FRACTIONS``: the trapezoid rule over k, divided
    by the range of k (0.49), i.e. the mean probability over k ∈ [1 %, 50 %], in [0, 1].

    Args:
        probabilities: (B, len(CURVE_FRACTIONS)) probabilities of the explained class.
    Returns:
        (B,) float64.
    """
    k = np.asarray(CURVE_FRACTIONS)
    return np.trapezoid(probabilities, k, axis=1) / (k[-1] - k[0])


def _point(kind: str, j: int):
    return lambda inputs: inputs.curves[kind][:, j]


def _area(kind: str):
    return lambda inputs: curve_area(inputs.curves[kind])


for _kind in ("Ins", "Del"):
    for _j, _column in enumerate(curve_columns(_kind)):
        register_metric(Metric(_column, _kind == "Ins", f"p_c with the {_column[4:]} of bins the map ranks first "
                               f"{'kept' if _kind == 'Ins' else 'removed'}", _point(_kind, _j),
                               "docs/metrics.md (after RISE, Petsiuk et al., 2018)", column="per-sample",
                               needs_curves=True))
for _metric in (
    Metric("Ins-AUC", True, "insertion: p_c with only the k % of bins the map ranks first kept, mean over k ∈ [1, 50] "
                            "% (trapezoid over k = 1, 2, 5, 10, 20, 50 %; ties in the map broken at random), in [0, "
                            "1]; with --curves", _area("Ins"), "docs/metrics.md (after RISE, Petsiuk et al., 2018)",
           column="added", needs_curves=True),
    Metric("Del-AUC", False, "deletion: the same with those bins removed, in [0, 1]; with --curves", _area("Del"),
           "docs/metrics.md (after RISE, Petsiuk et al., 2018)", column="added", needs_curves=True),
):
    register_metric(_metric)
