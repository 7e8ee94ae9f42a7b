"""Ground-truth localisation where the truth is known (issue 15): in a contaminated sample the
clean clip and the contaminant are known, so the ideal binary mask (IBM, Wang 2005) marks the
time-frequency bins the target dominates. A map is scored by how well it ranks those bins first
(Loc-AUC, the AUROC of the map against the IBM) and by the share of its mass on them (Loc-mass).

What this measures: whether an explanation points at the target sound rather than at the
contaminant. What it does not: whether the classifier used those bins. A classifier may rely on
only part of the target (or on the contaminant), and a faithful map then scores below 1.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score


def ideal_binary_mask(target_features: torch.Tensor, contaminant_features: torch.Tensor) -> torch.Tensor:
    """1 where the scaled clean clip's magnitude exceeds the contaminant's, bin by bin.

    Args:
        target_features, contaminant_features: (B, T, F) features of one domain (log1p magnitude
            of the STFT, F = 513, or log1p mel energies, F = 80, both ≥ 0) of the two terms of the
            mixture, each with its gain and norm as mixed (``ContaminatedSample.components``).
            log1p is monotone, so comparing features compares magnitudes.
    Returns:
        (B, T, F) bool.
    Raises:
        ValueError: the shapes differ.
    """
    if target_features.shape != contaminant_features.shape:
        raise ValueError(f"target features {tuple(target_features.shape)} and contaminant features "
                         f"{tuple(contaminant_features.shape)} differ in shape")
    return target_features > contaminant_features


def localisation_scores(mask: torch.Tensor, target_dominated: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Per-sample Loc-AUC and Loc-mass of masks against ideal binary masks.

    Args:
        mask: (B, T_m, F) in [0, 1]; the IBM is cropped to its T_m ≤ T frames.
        target_dominated: (B, T, F) bool ideal binary mask, or None (no contaminant: clean setting).
    Returns:
        "Loc-AUC": (B,) float64 AUROC of the mask's values as scores for the IBM's bins, in [0, 1],
        0.5 = chance, ties counted half (scikit-learn's ``roc_auc_score``); NaN without an IBM or
        when the IBM is all one value.
        "Loc-mass": (B,) float64 Σ M·IBM / Σ M, the share of the mask's mass on target-dominated
        bins, in [0, 1] (chance: the share of target-dominated bins); NaN for an all-zero mask or
        without an IBM.
    """
    batch = mask.shape[0]
    nan = torch.full((batch,), float("nan"), dtype=torch.float64)
    if target_dominated is None:
        return {"Loc-AUC": nan, "Loc-mass": nan.clone()}
    truth = target_dominated[:, : mask.shape[1]].flatten(1).cpu().numpy()
    scores = mask.detach().double().flatten(1).cpu().numpy()
    auc = [roc_auc_score(t, s) if 0 < t.sum() < t.size else np.nan for t, s in zip(truth, scores)]
    total = scores.sum(1)
    on_target = (scores * truth).sum(1)
    mass = np.where(total > 0, on_target / np.where(total > 0, total, 1.0), np.nan)
    return {"Loc-AUC": torch.tensor(auc, dtype=torch.float64), "Loc-mass": torch.tensor(mass, dtype=torch.float64)}
