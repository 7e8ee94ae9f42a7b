"""Contaminated evaluation inputs (BENCHMARK.md §6).

Currently: OOD mixtures, ``0.8·x/‖x‖ + 0.2·s/‖s‖`` then ``/max|·|``, with s another
ESC-50 clip. ID noise (gains 1, 1), speech (0.8, 0.2) and white noise (1, 0.5) are the
same :func:`mix` with other contaminants and gains; add their draw functions beside
:func:`draw_ood_mixtures`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

OOD_GAIN_X = 0.8
OOD_GAIN_C = 0.2


def mix(x: torch.Tensor, contaminant: torch.Tensor, gain_x: float,
        gain_c: float) -> torch.Tensor:
    """``gain_x·x/‖x‖ + gain_c·c/‖c‖``, then divided by its peak max|·| (§6).

    ‖·‖ is the L2 norm over samples (last dimension).

    Args:
        x, contaminant: float tensors of shape (N,) or (B, N) (broadcastable, same N).
        gain_x, gain_c: linear gains (unitless).
    Returns:
        tensor of the broadcast shape, each row with max|·| == 1.
    Raises:
        ValueError: a signal (or the mix) is all zero, so it cannot be normalised.
    """
    nx = x.norm(dim=-1, keepdim=True)
    nc = contaminant.norm(dim=-1, keepdim=True)
    if (nx == 0).any() or (nc == 0).any():
        raise ValueError("mix: a base or contaminant signal is all zero (L2 norm 0)")
    y = gain_x * x / nx + gain_c * contaminant / nc
    peak = y.abs().amax(dim=-1, keepdim=True)
    if (peak == 0).any():
        raise ValueError("mix: the mixture is all zero and cannot be peak-normalised")
    return y / peak


def ood_mixture(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """OOD mixture (§6): ``mix(x, s, 0.8, 0.2)``; shapes as :func:`mix`."""
    return mix(x, s, OOD_GAIN_X, OOD_GAIN_C)


@dataclass
class ContaminatedSample:
    """One evaluated sample: base clip ``base_file`` (row ``base_index`` of the
    evaluation part) mixed with ``contaminant_file`` at gains ``gain_x`` / ``gain_c``."""
    base_index: int
    base_file: str
    contaminant_file: str
    gain_x: float
    gain_c: float
    contamination: str = "mixtures"

    def apply(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Mix the loaded base waveform ``x`` with the loaded contaminant ``c``."""
        return mix(x, c, self.gain_x, self.gain_c)


def draw_ood_mixtures(evaluation: pd.DataFrame, pool: pd.DataFrame, seed: int,
                      per_clip: int = 2) -> list[ContaminatedSample]:
    """Draw ``per_clip`` contaminants per evaluation clip from ``pool`` (§6, OOD mixtures).

    For each evaluation row, in order, contaminants are drawn without replacement with
    ``numpy.random.default_rng(seed)`` from the pool clips (taken in filename order) of
    another class than the base; if fewer than ``per_clip`` exist, from any pool clip
    other than the base file itself (with replacement only if still too few).

    Returns:
        ``len(evaluation) * per_clip`` samples, ordered by base row then draw.
    Raises:
        ValueError: some base clip has no admissible contaminant (pool empty or only
            the base file itself).
    """
    rng = np.random.default_rng(seed)
    pool = pool.sort_values("filename", kind="stable").reset_index(drop=True)
    files = pool["filename"].to_numpy()
    targets = pool["target"].to_numpy()
    out = []
    for i, (base_file, target) in enumerate(zip(evaluation["filename"], evaluation["target"])):
        cand = files[(files != base_file) & (targets != target)]
        if len(cand) < per_clip:
            cand = files[files != base_file]
        if len(cand) == 0:
            raise ValueError(f"no contaminant for {base_file}: the pool has no other clip")
        picks = rng.choice(len(cand), size=per_clip, replace=len(cand) < per_clip)
        out += [ContaminatedSample(i, str(base_file), str(cand[j]), OOD_GAIN_X, OOD_GAIN_C)
                for j in picks]
    return out
