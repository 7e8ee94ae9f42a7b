"""Audio loading for the benchmark front-end (BENCHMARK.md §1).

Every clip enters the benchmark the same way: mono (channels averaged), 16 kHz,
exactly 5 s = 80,000 samples (cropped or zero-padded at the end), peak-normalised
to max|x| = 1.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

SAMPLE_RATE = 16000
"""Sample rate of every waveform in the benchmark, in Hz."""
CLIP_SAMPLES = 80000
"""Length of every clip in samples (5 s at SAMPLE_RATE)."""


class AudioError(ValueError):
    """An audio file is unreadable, corrupt, silent or contains non-finite samples."""


def fit_length(x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crop or zero-pad the last dimension of ``x`` to ``num_samples`` (at the end).

    Args:
        x: tensor of shape (..., N), any dtype.
        num_samples: target length (> 0).
    Returns:
        tensor of shape (..., num_samples), same dtype; the first min(N, num_samples)
        samples are ``x``'s, the rest zeros.
    """
    n = x.shape[-1]
    if n >= num_samples:
        return x[..., :num_samples]
    return torch.nn.functional.pad(x, (0, num_samples - n))


def load_clip(path: str | Path, sample_rate: int = SAMPLE_RATE,
              num_samples: int = CLIP_SAMPLES) -> torch.Tensor:
    """Load one audio file as the benchmark's normalised mono waveform (§1).

    Reads any format soundfile reads (WAV, FLAC, OGG, ...) at any sample rate and
    channel count; averages channels to mono, resamples to ``sample_rate`` with
    ``torchaudio.functional.resample``, crops or zero-pads at the end to
    ``num_samples``, and divides by max|x|.

    Args:
        path: audio file.
        sample_rate: output rate in Hz (default 16000).
        num_samples: output length in samples (default 80000 = 5 s at 16 kHz).
    Returns:
        float32 tensor of shape (num_samples,), values in [-1, 1], max|x| == 1.
    Raises:
        AudioError: file missing/unreadable/corrupt, empty, non-finite samples, or
            silent (all zero after cropping) — the message names the file and the fix.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except Exception as e:  # soundfile raises LibsndfileError / RuntimeError / OSError
        raise AudioError(
            f"cannot read audio file {path}: {str(e).rstrip('.')}. Check that the file exists and is a "
            f"complete audio file (re-download or replace it; formats: those libsndfile "
            f"reads, e.g. WAV/FLAC/OGG)") from e
    if data.size == 0:
        raise AudioError(f"audio file {path} contains no samples; replace it with a "
                         f"non-empty recording")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file {path} contains NaN or infinite samples; "
                         f"replace or re-encode it")
    x = torch.from_numpy(data).mean(dim=1)  # (T,) mono
    if rate != sample_rate:
        x = torchaudio.functional.resample(x, int(rate), int(sample_rate))
    x = fit_length(x, num_samples)
    peak = x.abs().max()
    if not torch.isfinite(peak) or peak <= 0:
        raise AudioError(f"audio file {path} is silent (all zero in the first "
                         f"{num_samples} samples at {sample_rate} Hz) and cannot be "
                         f"peak-normalised; remove it from the metadata or replace it")
    return (x / peak).to(torch.float32).contiguous()
