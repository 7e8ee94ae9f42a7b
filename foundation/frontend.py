"""Signal front-end: STFT, log1p magnitude, mel filterbank, STFT→Mel, ISTFT.

The one module that owns the time-frequency transforms (protocol §1). Every
other module goes through it; nothing else calls ``torch.stft``. The settings and
formulas match SpeechBrain's ``STFT``, ``spectral_magnitude(power=0.5)``,
``Filterbank(n_mels=80, log_mel=False)`` and ``ISTFT`` as configured in the L-MAC
recipe (``recipes/ESC50/interpret``), so SpeechBrain checkpoints see the inputs
they were trained on.

Shapes: waveforms ``(B, N)`` at 16 kHz (N = 80,000 for 5 s); complex STFT
``(B, T, F)`` with T = 1 + N // 186 frames (431 for 5 s) and F = 513 bins; mel
features ``(B, T, 80)``.

Two domains are explained (the paper's "listenable" and "not listenable" blocks):

- ``listenable``: the input is ``X = log1p|STFT|`` (B, T, 513), so maps and masks live on
  the STFT grid and can be turned back into audio. CNN14 sees ``log1p(Fbank(expm1(X)))``,
  a differentiable "STFT→Mel" wrapper (``stft_to_mel``); a classifier that takes waveforms
  hears ``waveform_from_log1p(X, phase, length)``, the inverse STFT with the input's phase.
- ``mel``: the input is the classifier's own features, fed to it directly (not listenable);
  for CNN14 ``log1p(Fbank(|STFT|))`` (B, T, 80).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch

SAMPLE_RATE = 16000
N_FFT = 1024
WIN_LENGTH = 372  # 23.2199 ms at 16 kHz
HOP_LENGTH = 186  # 11.6099 ms at 16 kHz
N_MELS = 80
F_MIN = 0.0
F_MAX = 8000.0
MAGNITUDE_EPS = 1e-14  # SpeechBrain's spectral_magnitude eps (added to the power)

N_BINS = N_FFT // 2 + 1


def _window(device: torch.device) -> torch.Tensor:
    return torch.hamming_window(WIN_LENGTH, device=device)


def stft(waveform: torch.Tensor) -> torch.Tensor:
    """Short-time Fourier transform of a batch of waveforms.

    Args:
        waveform: (B, N) or (N,) float, 16 kHz.
    Returns:
        complex tensor (B, T, 513), T = 1 + N // 186 (431 for 80,000 samples).
        Hamming window of 372 samples, hop 186, n_fft 1024, centred with zero
        padding, not normalised (SpeechBrain ``STFT`` defaults of the recipe).
    """
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    spec = torch.stft(
        waveform,
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=_window(waveform.device),
        center=True,
        pad_mode="constant",
        normalized=False,
        onesided=True,
        return_complex=True,
    )
    return spec.transpose(1, 2)


def magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``sqrt(re² + im² + 1e-14)`` of a complex STFT (B, T, F): SpeechBrain's
    ``spectral_magnitude(power=0.5)``, finite gradient at zero."""
    return spec.real.square().addcmul_(spec.imag, spec.imag).add_(MAGNITUDE_EPS).sqrt_()  # one buffer, autograd-safe


def log1p_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """The listenable domain's features ``X = log1p|STFT|`` (B, T, 513), values ≥ 0."""
    return torch.log1p(magnitude(spec))


def _hz_to_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@cache
def _mel_filterbank_cpu() -> torch.Tensor:
    mel = torch.linspace(_hz_to_mel(F_MIN), _hz_to_mel(F_MAX), N_MELS + 2)
    hz = 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    band = (hz[1:] - hz[:-1])[:-1]
    centre = hz[1:-1]
    freqs = torch.linspace(0, SAMPLE_RATE // 2, N_BINS)
    slope = (freqs.unsqueeze(0) - centre.unsqueeze(1)) / band.unsqueeze(1)
    triangles = torch.clamp(torch.minimum(1.0 + slope, 1.0 - slope), min=0.0)
    return triangles.T.contiguous()


def mel_filterbank(device: torch.device | str = "cpu") -> torch.Tensor:
    """Triangular mel filterbank matrix (513, 80), 0–8 kHz, HTK mel scale.

    Symmetric triangles centred on 80 mel-spaced frequencies with half-width equal
    to the spacing below each centre, exactly SpeechBrain's ``Filterbank``
    (``filter_shape="triangular"``). Peak 1, no area normalisation. Built once and
    copied once per device (not on every classifier pass); read-only, shared.
    """
    return _mel_filterbank_on(torch.device(device))


@cache
def _mel_filterbank_on(device: torch.device) -> torch.Tensor:
    return _mel_filterbank_cpu().to(device)


def stft_to_mel(features: torch.Tensor) -> torch.Tensor:
    """The differentiable STFT→Mel wrapper: ``log1p(Fbank(expm1(X)))``.

    Args:
        features: listenable-domain input X = log1p|STFT| (B, T, 513), possibly masked.
    Returns:
        log1p mel features (B, T, 80), what the classifier consumes.
    """
    return torch.log1p(torch.expm1(features) @ mel_filterbank(features.device))


def log1p_mel(spec: torch.Tensor) -> torch.Tensor:
    """The mel domain's features ``log1p(Fbank(|STFT|))`` (B, T, 80) from a complex STFT."""
    return torch.log1p(magnitude(spec) @ mel_filterbank(spec.device))


def istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    """Inverse STFT of a complex (B, T, 513) spectrogram → waveform (B, length)."""
    return torch.istft(
        spec.transpose(1, 2),
        n_fft=N_FFT,
        hop_length=HOP_LENGTH,
        win_length=WIN_LENGTH,
        window=_window(spec.device),
        center=True,
        normalized=False,
        onesided=True,
        length=length,
    )


def spectrogram_extent(frames: int, bins: int) -> tuple[float, float, float, float]:
    """matplotlib ``imshow`` extent (left, right, bottom, top) of a (frames, bins) STFT-grid picture:
    time in seconds (hop 186 samples at 16 kHz) and frequency in kHz (a bin is 16000 / 1024 = 15.6 Hz)."""
    return 0.0, frames * HOP_LENGTH / SAMPLE_RATE, 0.0, (bins - 1) * SAMPLE_RATE / N_FFT / 1000


def apply_mask(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mask-in and mask-out inputs M⊙X and (1−M)⊙X = X − M⊙X (§5), each (B, T_m, F).

    X (B, T, F) of either domain is cropped to the mask's T_m ≤ T frames first, as the reference does
    for L-MAC's 425-frame masks.
    """
    cropped = features[:, : mask.shape[1]]
    masked_in = mask * cropped
    return masked_in, cropped - masked_in


def waveform_from_log1p(features: torch.Tensor, phase: torch.Tensor, length: int) -> torch.Tensor:
    """The waveform ``ISTFT(expm1(X) · exp(j·phase))`` of listenable-domain features (§1).

    Args:
        features: X = log1p magnitudes (B, T_m, 513), possibly masked, T_m ≤ T; frames T_m … T − 1
            are silent (L-MAC's masks cover the first 425 of 431 frames).
        phase: (B, T, 513) radians, the phase of the explained input's STFT.
        length: output length in samples (the input's).
    Returns:
        waveform (B, length), differentiable in ``features``.
    """
    full = torch.zeros(phase.shape, dtype=features.dtype, device=features.device)
    full[:, : features.shape[1]] = features
    return istft(torch.polar(torch.expm1(full), phase), length)


def listenable_waveform(mask: torch.Tensor, spec: torch.Tensor, length: int) -> torch.Tensor:
    """The listenable explanation ``ISTFT(expm1(M ⊙ X) · exp(j·phase(STFT)))`` (§1).

    Args:
        mask: (B, T_m, 513) in [0, 1] on the STFT grid; T_m ≤ T (L-MAC's masks cover
            the first 425 of 431 frames: the remaining frames are silenced).
        spec: complex STFT (B, T, 513) of the explained input (its phase is reused).
        length: output length in samples (the input's).
    Returns:
        waveform (B, length). An all-ones mask gives back the input (up to the
        1e-14 magnitude epsilon).
    Raises:
        ValueError: if the mask is not on the STFT grid of ``spec``.
    """
    if mask.shape[0] != spec.shape[0] or mask.shape[-1] != spec.shape[-1] or mask.shape[1] > spec.shape[1]:
        raise ValueError(f"mask {tuple(mask.shape)} is not on the STFT grid {tuple(spec.shape)}")
    return waveform_from_log1p(mask * log1p_magnitude(spec)[:, : mask.shape[1]], spec.angle(), length)


def resample(waveform: torch.Tensor, rate: int) -> torch.Tensor:
    """(B, N) at the benchmark's 16 kHz → (B, N') at ``rate`` Hz (``torchaudio``'s band-limited sinc
    interpolation, differentiable); the input itself when ``rate`` is 16 kHz."""
    if rate == SAMPLE_RATE:
        return waveform
    from torchaudio.functional import resample as sinc_resample

    return sinc_resample(waveform, SAMPLE_RATE, rate)


@dataclass(frozen=True)
class Domain:
    """A domain of the benchmark: the grid explanations live on (§1, §3). ``listenable``: the
    STFT grid, X = log1p|STFT| (B, T, 513); ``mel`` and ``waveform``: the classifier's own features,
    a (log-)mel grid, or for a model that reads the waveform (the wav2vec2 family) the samples in
    frames of the model's own frame rate (20 ms: (B, 250, 320) for a 5 s clip). A classifier has
    the listenable domain and the one of its own features (``Classifier.feature_domain``);
    ``classifiers.base.DomainModel`` turns each into what the model takes."""

    name: str
    label: str  # as in the paper's tables


DOMAINS = {
    "listenable": Domain("listenable", "listenable (STFT→Mel)"),
    "mel": Domain("mel", "mel"),
    "waveform": Domain("waveform", "waveform (20 ms frames)"),
}
