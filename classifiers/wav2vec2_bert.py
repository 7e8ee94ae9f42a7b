"""Wav2Vec2-BERT (Barrault et al., "Seamless", 2023), as ``transformers``'
``Wav2Vec2BertForSequenceClassification`` with its ``SeamlessM4TFeatureExtractor``, behind the classifier
contract.

Features: the Kaldi-style log mel filterbank the extractor computes, in torch and differentiable: the
waveform scaled to 16-bit integers (×2¹⁵), frames of 400 samples every 160 (25 ms every 10 ms at 16 kHz,
no padding at the edges), each frame's mean removed, pre-emphasis 0.97 (the first sample against
itself), a Povey window (Hann^0.85), the power of a 512-point FFT, 80 triangular filters on Kaldi's mel
scale (1127·ln(1 + f/700)) from 20 Hz to half the sampling rate, floored at 1.19e-7 and logged:
(B, T, 80), T = 498 for a 5 s clip. They are the grid of the ``mel`` domain (10 ms × 80 bands), so a
mask removes time-frequency cells before the extractor's two last steps, which ``model_input`` takes:
each mel band normalised over the clip's frames, ``(x − mean) / sqrt(var + 1e-7)`` with the sample
variance (ddof 1), then ``stride`` (2) consecutive frames stacked into one step: ``input_features``
(B, T // 2, 160). An odd last frame is dropped: the extractor pads it to a whole step with a zero frame
and masks that step out of the model's attention, convolution (causal) and pooling, which gives the
model's output without it. The framing is not the benchmark's STFT, so the listenable domain reaches the
model through the inverse STFT with the input's phase (``classifiers.base.DomainModel``). In the mel
domain a mask multiplies the log energies (M⊙X: 0 is a band energy of 1 in 16-bit units², some 30 dB
below a clip's quietest bands here, ~7–27 nats) and the normalisation then sees the masked grid. The
filterbank is computed in float64 (as the extractor computes), its result cast to float32.

Representations: the outputs of the last conformer layers (deepest first), each a grid on the time axis
(B, hidden, T // 2, 1), one step per 20 ms; GradCAM reads the steps entering the last layer through
``cam_grid`` (an identity module on their grid), as for the wav2vec2 family (``classifiers.wav2vec2``).

Source: ``transformers/models/seamless_m4t/feature_extraction_seamless_m4t.py`` and
``transformers/audio_utils.py`` (``spectrogram``, ``mel_filter_bank``) of the pinned ``transformers``;
loaded by ``classifiers.huggingface`` (``--classifier hf:PATH_OR_ID``).
"""
from __future__ import annotations

from functools import cache
from typing import Any

import torch
from torch import nn

from classifiers.base import Classifier, ClassifierPass
from classifiers.wav2vec2 import TokenGrid, encoder_layers, encoder_levels, time_grid, time_tokens
from foundation.frontend import resample

FRAME = 400
"""Samples per fbank frame (25 ms at 16 kHz), whatever the rate, as the extractor frames."""
HOP = 160
"""Samples between frames (10 ms at 16 kHz)."""
FFT = 512
"""FFT length (the frame zero-padded to the next power of two): 257 frequency bins."""
PREEMPHASIS = 0.97
MEL_FLOOR = 1.192092955078125e-07
"""The extractor's ``mel_floor`` (float32's machine epsilon), the least mel energy before the log."""
LOW_HZ = 20.0
"""The lowest filter's lower edge, in Hz."""
NORM_EPS = 1e-7
"""Added to each band's variance before the square root in the per-band normalisation."""


def _kaldi_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


@cache
def _mel_filters_cpu(bands: int, sample_rate: int) -> torch.Tensor:
    edges = torch.linspace(_kaldi_mel(torch.tensor(LOW_HZ, dtype=torch.float64)).item(),
                           _kaldi_mel(torch.tensor(sample_rate // 2, dtype=torch.float64)).item(), bands + 2,
                           dtype=torch.float64)
    bins = _kaldi_mel(torch.arange(FFT // 2 + 1, dtype=torch.float64) * (sample_rate / FFT)).unsqueeze(1)
    rising = (bins - edges[:-2]) / (edges[1:-1] - edges[:-2])
    falling = (edges[2:] - bins) / (edges[2:] - edges[1:-1])
    return torch.minimum(rising, falling).clamp(min=0.0)


def mel_filters(bands: int = 80, sample_rate: int = 16000, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The extractor's filterbank (257, bands): triangles of peak 1, drawn on Kaldi's mel scale
    (1127·ln(1 + f/700)) between ``LOW_HZ`` and ``sample_rate // 2`` over the bins of a 512-point FFT.
    Computed in float64 once per (bands, rate), then cast."""
    return _mel_filters_cpu(bands, sample_rate).to(device=device, dtype=dtype)


def seamless_fbank(waveform: torch.Tensor, bands: int = 80, sample_rate: int = 16000) -> torch.Tensor:
    """``SeamlessM4TFeatureExtractor``'s log mel filterbank before normalisation and stacking, differentiable.

    Args:
        waveform: (B, N) float in [−1, 1] at ``sample_rate``, N ≥ 400 (scaled to 16-bit integers here).
        bands: mel bands; sample_rate: Hz, the top filter's upper edge is half of it.
    Returns:
        (B, T, bands) natural-log mel power, T = 1 + (N − 400) // 160, float32 (float64 for a float64
        waveform). Computed in float64 with autocast off: in float32, pre-emphasis and the mean removal
        cancel digits of 16-bit-scale samples, which moves quiet bands by up to 3e-4 (the extractor computes
        in float64); float16 cannot hold the power.
    Raises:
        ValueError: fewer than 400 samples (not one frame).
    """
    if waveform.shape[-1] < FRAME:
        raise ValueError(f"{waveform.shape[-1]} samples: the filterbank needs at least one frame of {FRAME}")
    with torch.autocast(waveform.device.type, enabled=False):
        frames = (waveform.double() * 2.0 ** 15).unfold(-1, FRAME, HOP)  # (B, T, 400)
        frames = frames - frames.mean(-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1.0 - PREEMPHASIS), frames[..., 1:] - PREEMPHASIS * frames[..., :-1]],
                           -1)
        window = torch.hann_window(FRAME, periodic=False, device=frames.device, dtype=frames.dtype).pow(0.85)
        spectrum = torch.fft.rfft(frames * window, n=FFT)
        power = spectrum.real.square() + spectrum.imag.square()
        mel = power @ mel_filters(bands, sample_rate, frames.device, frames.dtype)
        return mel.clamp(min=MEL_FLOOR).log().to(torch.promote_types(waveform.dtype, torch.float32))


def normalise_bands(features: torch.Tensor) -> torch.Tensor:
    """The extractor's ``do_normalize_per_mel_bins``: (B, T, F) → each band (B, ·, F) at zero mean and unit
    variance over the T frames, ``(x − mean) / sqrt(var + 1e-7)`` with the sample variance (ddof 1)."""
    mean = features.mean(1, keepdim=True)
    return (features - mean) / torch.sqrt(features.var(1, unbiased=True, keepdim=True) + NORM_EPS)


def stack_frames(features: torch.Tensor, stride: int) -> torch.Tensor:
    """(B, T, F) → (B, T // stride, F·stride): each step the ``stride`` consecutive frames side by side, earliest
    first (the extractor's reshape); the last T mod stride frames dropped."""
    steps = features.shape[1] // stride
    return features[:, : steps * stride].reshape(len(features), steps, features.shape[2] * stride)


class Wav2Vec2BertClassifier(Classifier):
    """A ``Wav2Vec2BertForSequenceClassification`` with its ``SeamlessM4TFeatureExtractor``'s settings (module
    docstring).

    Args:
        model: the transformers model (its ``config.num_labels`` = ``len(class_names)``).
        class_names: one per logit.
        extractor: ``num_mel_bins``, ``stride`` and ``sampling_rate`` of its ``SeamlessM4TFeatureExtractor`` (or
            a dict with those keys).
    Raises:
        ValueError: the extractor's steps are not as wide as the model's input (num_mel_bins · stride ≠
            ``config.feature_projection_input_dim``).
    """

    feature_domain = "mel"

    def __init__(self, model: nn.Module, class_names: list[str], extractor: Any):
        super().__init__(class_names)
        self.model = model
        settings = extractor if isinstance(extractor, dict) else vars(extractor)
        self.extractor_settings = {k: settings[k] for k in ("num_mel_bins", "stride", "sampling_rate")}
        width = self.extractor_settings["num_mel_bins"] * self.extractor_settings["stride"]
        expected = model.config.feature_projection_input_dim
        if width != expected:
            raise ValueError(f"its feature extractor gives steps of {self.extractor_settings['num_mel_bins']} bands × "
                             f"{self.extractor_settings['stride']} frames = {width} values where the model reads "
                             f"{expected}: save the model's own SeamlessM4TFeatureExtractor (num_mel_bins · stride = "
                             f"{expected})")
        self.sample_rate = int(self.extractor_settings["sampling_rate"])
        self.cam_grid = nn.Identity()
        self.tokens = TokenGrid(encoder_layers(model), time_grid, time_tokens, self.cam_grid)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) at 16 kHz → the log mel filterbank (B, T, 80) at the model's rate: the extractor's features
        before normalisation and stacking, T = 498 for 5 s."""
        return seamless_fbank(resample(waveform, self.sample_rate), self.extractor_settings["num_mel_bins"],
                              self.sample_rate)

    def model_input(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, 80) → the model's ``input_features`` (B, T // 2, 160): normalised per band over the frames, then
        consecutive frames stacked, as the extractor does (an odd last frame dropped: module docstring)."""
        return stack_frames(normalise_bands(features), self.extractor_settings["stride"])

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits (B, n_classes) and the last layers' outputs (B, hidden, T // 2, 1), deepest first, for
        the filterbank (B, T, 80)."""
        self.tokens.take()
        logits = self.model(input_features=self.model_input(features)).logits
        return ClassifierPass(logits, self.tokens.take())

    def cam_layer(self) -> nn.Module:
        """The grid of the steps entering the last layer, (B, hidden, T // 2, 1)."""
        return self.cam_grid

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The head, then the layers from the last down, then the feature projection."""
        return encoder_levels(self.model, "feature projection", [m for name, m in self.model.named_modules()
                                                                 if name.endswith("feature_projection")])

    def describe(self) -> dict[str, Any]:
        """What run.json records: the contract's entries, the model's type and sizes, the extractor's settings."""
        config = self.model.config
        return {**super().describe(), "model_type": config.model_type, "hidden_size": config.hidden_size,
                "layers": config.num_hidden_layers, "frame_ms": 1000 * HOP / self.sample_rate,
                **self.extractor_settings}

