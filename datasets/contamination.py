"""Contaminated evaluation inputs (protocol §6).

Every condition is one formula, ``gain_x·x/‖x‖ + gain_c·c/‖c‖`` then divided by its
peak (``y / y.max()``, the signed maximum, as the reference; ``absmax``: ``/ max|y|``),
with its own contaminant c and gains:

| condition | contaminant | gains | per clip |
|---|---|---|---|
| ``noise`` (ID) | a noise recording (WHAM! in the paper) | 1, 1 (0 dB) | 1 |
| ``mixtures`` (OOD) | another clip of the dataset | 0.8, 0.2 | 2 |
| ``speech`` (OOD) | a speech recording (LJSpeech in the paper) | 0.8, 0.2 | 2 |
| ``white_noise`` (OOD) | n ~ N(0, 1), seeded per sample | 1, 0.5 | 2 |
| ``clean`` | none: the clip as it is | — | 1 |
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from datasets.audio import CLIP_SAMPLES, peak_normalise

OOD_GAIN_X = 0.8
OOD_GAIN_C = 0.2
GAINS = {"noise": (1.0, 1.0), "mixtures": (OOD_GAIN_X, OOD_GAIN_C), "speech": (OOD_GAIN_X, OOD_GAIN_C),
         "white_noise": (1.0, 0.5)}
WHITE_NOISE = "N(0,1)"


def mixture_terms(x: torch.Tensor, contaminant: torch.Tensor, gain_x: float,
                  gain_c: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of a mixture before its peak normalisation: ``gain_x·x/‖x‖`` and ``gain_c·c/‖c‖``.

    ‖·‖ is the L2 norm over samples (last dimension); shapes (N,) or (B, N) (broadcastable, same N).
    Raises:
        ValueError: a signal is all zero.
    """
    nx = x.norm(dim=-1, keepdim=True)
    nc = contaminant.norm(dim=-1, keepdim=True)
    if (nx == 0).any() or (nc == 0).any():
        raise ValueError("mix: a base or contaminant signal is all zero (L2 norm 0)")
    return gain_x * x / nx, gain_c * contaminant / nc


def mix(x: torch.Tensor, contaminant: torch.Tensor, gain_x: float, gain_c: float,
        peak_normalisation: str = "max") -> torch.Tensor:
    """``y = gain_x·x/‖x‖ + gain_c·c/‖c‖`` (``mixture_terms``), then ``peak_normalise(y)``: ``y / y.max()``
    by default, as the reference (§6); ``peak_normalisation="absmax"``: ``y / max|y|``.

    Args:
        x, contaminant: float tensors of shape (N,) or (B, N) (broadcastable, same N).
        gain_x, gain_c: linear gains (unitless).
        peak_normalisation: "max" or "absmax" (``datasets.audio.PEAK_NORMALISATIONS``).
    Returns:
        tensor of the broadcast shape, each row with max == 1 ("max") or max|·| == 1.
    Raises:
        ValueError: a signal is all zero, or the mix has no positive peak.
    """
    target, contaminant = mixture_terms(x, contaminant, gain_x, gain_c)
    return peak_normalise(target + contaminant, peak_normalisation)


@dataclass
class ContaminatedSample:
    """One evaluated sample: base clip ``base_file`` (row ``base_index`` of the
    evaluation part) mixed with ``contaminant_file`` at gains ``gain_x`` / ``gain_c``.

    White noise has ``contaminant_file`` "N(0,1)" and the seed of its draw in
    ``noise_seed``; a clean sample has no contaminant ("") and ``gain_c`` 0.
    """
    base_index: int
    base_file: str
    contaminant_file: str
    gain_x: float
    gain_c: float
    contamination: str = "mixtures"
    noise_seed: int | None = None

    def apply(self, x: torch.Tensor, c: torch.Tensor | None, peak_normalisation: str = "max") -> torch.Tensor:
        """Mix the loaded base waveform ``x`` (N,) with the loaded contaminant ``c`` (N,) and
        peak-normalise ("max": ÷ signed maximum, as the reference; "absmax": ÷ max|·|)."""
        if self.contamination == "clean":
            return peak_normalise(x, peak_normalisation)
        return mix(x, c, self.gain_x, self.gain_c, peak_normalisation)

    def components(self, x: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The target and contaminant terms (N,) each of the mixture as ``apply`` sums them (before the
        common peak normalisation), or None for a clean sample: the ground truth of localisation."""
        if self.contamination == "clean":
            return None
        return mixture_terms(x, c, self.gain_x, self.gain_c)


def white_noise(seed: int, num_samples: int) -> torch.Tensor:
    """Reproducible N(0, 1) noise (num_samples,) for a sample's ``noise_seed``."""
    return torch.randn(num_samples, generator=torch.Generator().manual_seed(seed))


def draw_from_files(evaluation: pd.DataFrame, files: list[str], contamination: str, seed: int,
                    per_clip: int) -> list[ContaminatedSample]:
    """``per_clip`` contaminant files per evaluation clip, drawn with ``numpy.random.default_rng(seed)``
    (without replacement when there are enough files), with the gains of ``contamination``.

    Raises:
        ValueError: no files, or an unknown contamination.
    """
    if not files:
        raise ValueError(f"no contaminant files for {contamination}")
    gain_x, gain_c = GAINS[contamination]
    rng = np.random.default_rng(seed)
    samples = []
    for i, base in enumerate(evaluation["filename"]):
        picks = rng.choice(len(files), size=per_clip, replace=len(files) < per_clip)
        samples += [ContaminatedSample(i, str(base), files[j], gain_x, gain_c, contamination) for j in picks]
    return samples


def draw_white_noise(evaluation: pd.DataFrame, seed: int, per_clip: int = 2) -> list[ContaminatedSample]:
    """``per_clip`` white-noise samples per clip; sample k's noise is ``white_noise(seed·10⁶ + k)``."""
    gain_x, gain_c = GAINS["white_noise"]
    return [ContaminatedSample(i, str(base), WHITE_NOISE, gain_x, gain_c, "white_noise",
                               noise_seed=seed * 1_000_000 + i * per_clip + j)
            for i, base in enumerate(evaluation["filename"]) for j in range(per_clip)]


def clean_samples(evaluation: pd.DataFrame) -> list[ContaminatedSample]:
    """The evaluation clips as they are (``--setting clean``)."""
    return [ContaminatedSample(i, str(base), "", 1.0, 0.0, "clean") for i, base in enumerate(evaluation["filename"])]


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


def contaminant(sample: ContaminatedSample, waveforms: dict) -> torch.Tensor | None:
    """The loaded contaminant of ``sample`` (white noise is generated from its seed)."""
    if sample.contamination == "white_noise":
        return white_noise(sample.noise_seed, CLIP_SAMPLES)
    return waveforms.get(sample.contaminant_file)
