"""Audio loading for the benchmark front-end (protocol §1).

Every clip enters the benchmark the same way: mono (channels averaged), 16 kHz,
exactly 5 s = 80,000 samples (cropped or zero-padded at the end), peak-normalised
as the reference does: ``x / x.max()``, the signed maximum (protocol §1), so a clip
whose negative peak is larger keeps samples below −1. ``peak_normalisation="absmax"``
divides by max|x| instead.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

SAMPLE_RATE = 16000
"""Sample rate of every waveform in the benchmark, in Hz."""
CLIP_SAMPLES = 80000
"""Length of every clip in samples (5 s at SAMPLE_RATE)."""


PEAK_NORMALISATIONS = {
    "max": "x / x.max() (signed maximum, as the reference)",
    "absmax": "x / max|x|",
}
"""How a clip and every mixture are scaled (``--peak-normalisation``), with a description."""


class AudioError(ValueError):
    """An audio file is unreadable, corrupt, silent or contains non-finite samples."""


def peak_normalise(x: torch.Tensor, peak_normalisation: str = "max") -> torch.Tensor:
    """Divide each row of ``x`` (..., N) by its peak (protocol §1, §6).

    Args:
        x: float waveforms (..., N).
        peak_normalisation: "max" divides by the signed maximum ``x.max()`` as the
            reference does (values then lie in [min/max, 1], below −1 when the negative
            peak is larger); "absmax" divides by max|x| (values in [−1, 1]).
    Returns:
        tensor of the same shape and dtype.
    Raises:
        ValueError: unknown ``peak_normalisation``, or a row whose peak is not positive
            (all zero, or, for "max", no positive sample).
    """
    if peak_normalisation not in PEAK_NORMALISATIONS:
        raise ValueError(f"unknown peak normalisation {peak_normalisation!r}; choose {', '.join(PEAK_NORMALISATIONS)}")
    peak = x.amax(dim=-1, keepdim=True) if peak_normalisation == "max" else x.abs().amax(dim=-1, keepdim=True)
    if not bool((peak > 0).all()):
        raise ValueError("a waveform has no positive peak (all zero, or no positive sample with "
                         "--peak-normalisation max) and cannot be peak-normalised")
    return x / peak


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


def declared_frames(path: Path) -> int | None:
    """Frames per channel that a RIFF/WAVE file's header declares (its ``data`` chunk's size over the
    block size), or None for another format or a header this reader does not follow. libsndfile
    reads a cut WAV up to its end without a word, so its own frame count cannot tell."""
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":  # RF64 and others: not followed
            return None
        block = None
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if name == b"fmt ":
                fmt = file.read(size + (size & 1))
                block = struct.unpack("<H", fmt[12:14])[0] if len(fmt) >= 14 else None
            elif name == b"data":
                return size // block if block else None
            else:
                file.seek(size + (size & 1), 1)


def load_clip(path: str | Path, sample_rate: int = SAMPLE_RATE, num_samples: int = CLIP_SAMPLES,
              peak_normalisation: str = "max") -> torch.Tensor:
    """Load one audio file as the benchmark's normalised mono waveform (§1).

    Reads any format soundfile reads (WAV, FLAC, OGG, ...) at any sample rate and
    channel count; averages channels to mono, resamples to ``sample_rate`` with
    ``torchaudio.functional.resample``, crops or zero-pads at the end to
    ``num_samples``, and divides by its peak (``peak_normalise``).

    Args:
        path: audio file.
        sample_rate: output rate in Hz (default 16000).
        num_samples: output length in samples (default 80000 = 5 s at 16 kHz).
        peak_normalisation: "max" (x / x.max(), the reference's) or "absmax" (x / max|x|).
    Returns:
        float32 tensor of shape (num_samples,): max x == 1 ("max"; samples may lie
        below −1) or max|x| == 1 ("absmax").
    Raises:
        AudioError: file missing/unreadable/corrupt, empty, truncated (a WAV with fewer
            frames than its header declares), non-finite samples, or silent (all zero
            after cropping) — the message names the file and the fix.
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
    declared = declared_frames(path)
    if declared is not None and len(data) < declared:
        raise AudioError(f"audio file {path} is truncated: its header declares {declared / rate:.2f} s, only "
                         f"{len(data) / rate:.2f} s could be decoded; re-download or replace it")
    if not np.isfinite(data).all():
        raise AudioError(f"audio file {path} contains NaN or infinite samples; "
                         f"replace or re-encode it")
    x = torch.from_numpy(data).mean(dim=1)  # (T,) mono
    if rate != sample_rate:
        x = torchaudio.functional.resample(x, int(rate), int(sample_rate))
    x = fit_length(x, num_samples)
    if not bool((x != 0).any()):
        raise AudioError(f"audio file {path} is silent (all zero in the first "
                         f"{num_samples} samples at {sample_rate} Hz) and cannot be "
                         f"peak-normalised; remove it from the metadata or replace it")
    if peak_normalisation == "max" and not bool((x > 0).any()):
        raise AudioError(f"audio file {path} has no positive sample, so the reference's x / x.max() is undefined; "
                         "replace it or pass --peak-normalisation absmax")
    return peak_normalise(x, peak_normalisation).to(torch.float32).contiguous()


def load_clips(paths: list[Path], peak_normalisation: str = "max") -> torch.Tensor:
    """(N, ``CLIP_SAMPLES``) waveforms of the audio files (``load_clip`` each); (0, ``CLIP_SAMPLES``) for none.

    Raises:
        AudioError: an unreadable, empty or silent file (named).
    """
    clips = [load_clip(path, peak_normalisation=peak_normalisation)
             for path in tqdm(paths, desc="load audio", unit="clip", leave=False)]
    return torch.stack(clips) if clips else torch.zeros(0, CLIP_SAMPLES)


def write_audio(path: Path, waveform: torch.Tensor) -> None:
    """16 kHz mono 32-bit float WAV of a waveform (N,), unclipped (a reference-normalised
    clip may hold samples below −1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, waveform.detach().cpu().numpy(), SAMPLE_RATE, subtype="FLOAT")
