"""Whisper's encoder as an audio classifier (Radford et al., "Robust Speech Recognition via Large-Scale
Weak Supervision", 2022): ``transformers``' ``WhisperForAudioClassification`` behind the classifier contract.

Features: the log-mel spectrogram of ``WhisperFeatureExtractor``, computed differentiably in torch.
The extractor pads (or crops) the waveform with zeros to its chunk (30 s: ``n_samples``), takes a
centred STFT (400-sample periodic Hann window, hop 160, reflect padding at both ends, as its torch
path does), drops the last frame, maps the power spectrum through its Slaney mel filters, takes
``log10(max(mel, 1e-10))``, clamps it from below at (maximum − 8), the maximum taken per clip over
the whole padded spectrogram (both its NumPy path and its batched torch path take it per clip),
and normalises to ``(x + 4) / 4``: 3000 frames of 10 ms. Only the first T of them hold the clip,
the frames whose window reaches a clip sample (T = 502 for a 5 s clip at 16 kHz); every later
frame is silence, log10(1e-10) = −10 before the clamp. ``features`` gives those T frames,
(B, T, n_mels): the grid of the ``mel`` domain. ``model_input`` appends the silent frames up to
the 3000 the encoder takes, each the constant ``max(−1.5, m − 2)``, m the maximum of the given
(possibly masked) features of the clip: exactly the extractor's value for an unmasked clip. The
listenable domain reaches the model through the inverse STFT with the input's phase
(``classifiers.base.DomainModel``).

Representations: the encoder's two convolutions halve the frame rate, one position per 20 ms
(1500 per chunk). The outputs of the last layers (deepest first) are cropped to the positions of
the clip, ceil(T / 2) (251 for a 5 s clip: position j stands for frames 2j and 2j + 1), each a
grid on the time axis (B, d_model, T', 1). GradCAM reads the clip's positions entering the last
layer, routed through ``cam_grid`` (an identity module on their grid); the positions of the
padding join them again behind it, unchanged. The classification head averages all 1500
positions, padding included, as the model was trained.

Pretrained models load through ``classifiers.huggingface`` (``--classifier hf:PATH_OR_ID``).
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classifiers.base import Classifier, ClassifierPass
from classifiers.wav2vec2 import TokenGrid, encoder_layers, encoder_levels, time_grid, time_tokens
from foundation.frontend import resample

MEL_FLOOR = 1e-10
"""The floor of the mel power before log10; every frame of the zero padding sits on it."""
SILENCE_LOG_MEL = -10.0
"""log10 of ``MEL_FLOOR``: the log mel of every frame of the zero padding."""
DYNAMIC_RANGE = 8.0
"""The extractor keeps 8 decades (80 dB) below each clip's maximum."""
CLIP_SECONDS = 5
"""The benchmark's clip length: a chunk shorter than this would cut the clip."""


def normalise_log_mel(log_mel: torch.Tensor) -> torch.Tensor:
    """``WhisperFeatureExtractor``'s dynamic-range clamp and scaling of a clip's log10 mel power.

    Args:
        log_mel: (B, T, n_mels) log10 mel power, every frame of the clip (the silent frames of the padding
            beyond them do not change the result: they hold the lowest value, −10).
    Returns:
        (B, T, n_mels): ``(max(x, M − 8) + 4) / 4``, M the maximum of each clip (per clip, not per batch).
    """
    peak = log_mel.amax(dim=(1, 2), keepdim=True)
    return (torch.maximum(log_mel, peak - DYNAMIC_RANGE) + 4.0) / 4.0


def padding_value(features: torch.Tensor) -> torch.Tensor:
    """The normalised value of a silent frame next to features (B, T, n_mels): ``max(−1.5, m − 2)`` per clip,
    m the features' maximum, i.e. ``(max(−10, M − 8) + 4) / 4`` with M = 4m − 4. Returns (B, 1, 1)."""
    silence = (SILENCE_LOG_MEL + 4.0) / 4.0
    return torch.clamp(features.amax(dim=(1, 2), keepdim=True) - DYNAMIC_RANGE / 4.0, min=silence)


class WhisperClassifier(Classifier):
    """A ``WhisperForAudioClassification`` with its ``WhisperFeatureExtractor``'s settings (module docstring).

    Args:
        model: the transformers model (its ``config.num_labels`` = ``len(class_names)``).
        class_names: one per logit.
        extractor: its ``WhisperFeatureExtractor`` (or a dict of the same attributes: ``feature_size``,
            ``sampling_rate``, ``hop_length``, ``n_fft``, ``chunk_length``, ``n_samples``, ``nb_max_frames``,
            ``padding_value``, ``mel_filters`` (n_fft // 2 + 1, feature_size)). Its ``dither`` is not applied:
            the features are deterministic, as with ``dither=0`` (the extractor's default).
    Raises:
        ValueError: the extractor gives another number of mel bands than the model reads, or another number
            of frames than its encoder takes (max_source_positions · 2), or pads with a nonzero value; or its
            chunk is shorter than a 5 s clip.
    """

    def __init__(self, model: nn.Module, class_names: list[str], extractor: Any):
        super().__init__(class_names)
        self.model = model
        settings = extractor if isinstance(extractor, dict) else vars(extractor)
        self.extractor_settings = {k: settings[k] for k in ("feature_size", "sampling_rate", "hop_length", "n_fft",
                                                        "chunk_length", "n_samples", "nb_max_frames")}
        self.sample_rate = int(settings["sampling_rate"])
        config, encoder = model.config, model.encoder
        bands, frames = settings["feature_size"], settings["nb_max_frames"]
        self.encoder_frames = config.max_source_positions * encoder.conv1.stride[0] * encoder.conv2.stride[0]
        if bands != config.num_mel_bins:
            raise ValueError(f"its feature extractor gives {bands} mel bands where the model reads "
                             f"{config.num_mel_bins}: save the model's own WhisperFeatureExtractor "
                             f"(feature_size={config.num_mel_bins})")
        if frames != self.encoder_frames:
            raise ValueError(f"its feature extractor gives {frames} frames ({settings['chunk_length']} s chunks) where "
                             f"the encoder takes exactly {self.encoder_frames}: save the model's own "
                             "WhisperFeatureExtractor (chunk_length to match max_source_positions)")
        if settings["n_samples"] < CLIP_SECONDS * self.sample_rate:
            raise ValueError(f"its chunk of {settings['n_samples']} samples ({settings['chunk_length']} s) is shorter "
                             f"than a {CLIP_SECONDS} s clip, which it would cut: use a model made for chunks of "
                             f"{CLIP_SECONDS} s or longer")
        if settings.get("padding_value", 0.0) != 0.0:
            raise ValueError(f"its feature extractor pads with {settings['padding_value']}, not silence: save a "
                             "WhisperFeatureExtractor with padding_value=0.0 (the default)")
        self.register_buffer("mel_filters", torch.as_tensor(settings["mel_filters"], dtype=torch.float32),
                             persistent=False)
        self.register_buffer("window", torch.hann_window(settings["n_fft"]), persistent=False)
        self.clip_positions = config.max_source_positions
        self.cam_grid = nn.Identity()
        self.tokens = TokenGrid(encoder_layers(model), self._clip_grid, self._join_padding, self.cam_grid)

    def clip_frames(self, samples: int) -> int:
        """Frames of a clip of ``samples`` samples at the model's rate: those whose window (nonzero over its
        n_fft − 1 inner samples) reaches a clip sample, at most the chunk's; 502 for 80,000 samples."""
        settings = self.extractor_settings
        samples = min(samples, settings["n_samples"])
        return min(settings["nb_max_frames"], (samples + settings["n_fft"] // 2 - 2) // settings["hop_length"] + 1)

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) at 16 kHz → the normalised log-mel frames of the clip (B, T, n_mels), T = ``clip_frames(N')``
        at the model's rate: the extractor's ``input_features`` (B, n_mels, 3000) transposed, its first T frames.

        The STFT runs on the clip followed by enough zeros for T frames: the frames are those of the
        whole zero-padded chunk, whose further frames are silent and below every clip's maximum. In float32
        with autocast off (a bf16 mel product would lose the extractor's precision)."""
        settings = self.extractor_settings
        waveform = resample(waveform.float(), self.sample_rate)[:, : settings["n_samples"]]
        frames, hop = self.clip_frames(waveform.shape[1]), settings["hop_length"]
        padded_length = min(settings["n_samples"], frames * hop + settings["n_fft"])
        with torch.autocast(waveform.device.type, enabled=False):
            padded = F.pad(waveform, (0, padded_length - waveform.shape[1]))
            spec = torch.stft(padded, settings["n_fft"], hop, window=self.window, center=True, pad_mode="reflect",
                              return_complex=True)[..., :frames]
            power = torch.view_as_real(spec).square().sum(-1)  # (B, n_fft // 2 + 1, T)
            mel = torch.einsum("bkt,km->btm", power, self.mel_filters)
            return normalise_log_mel(mel.clamp(min=MEL_FLOOR).log10())

    def model_input(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, n_mels) → the model's ``input_features`` (B, n_mels, 3000): the frames of the chunk's zero
        padding appended (``padding_value`` of the given features), as ``WhisperFeatureExtractor`` pads."""
        features = features[:, : self.encoder_frames]
        missing = self.encoder_frames - features.shape[1]
        silence = padding_value(features).expand(-1, missing, features.shape[2])
        return torch.cat([features, silence], 1).transpose(1, 2)

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits (B, n_classes) and the last layers' outputs at the clip's positions (deepest first), each
        (B, d_model, ceil(T / 2), 1), for features (B, T, n_mels)."""
        self.clip_positions = min(math.ceil(features.shape[1] / 2), self.model.config.max_source_positions)
        self.tokens.take()
        logits = self.model(input_features=self.model_input(features)).logits
        return ClassifierPass(logits, self.tokens.take())

    def _clip_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        return time_grid(tokens[:, : self.clip_positions])

    def _join_padding(self, grid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        return torch.cat([time_tokens(grid, tokens), tokens[:, grid.shape[2]:]], 1)

    def cam_layer(self) -> nn.Module:
        """The grid of the clip's positions entering the last encoder layer, (B, d_model, ceil(T / 2), 1)."""
        return self.cam_grid

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The head (projector and classifier), then the encoder layers from the last down, then the
        convolutions and the positional embedding (LayerNorms kept)."""
        encoder = self.model.encoder
        return encoder_levels(self.model, "convolutions", [encoder.conv1, encoder.conv2, encoder.embed_positions])

    def describe(self) -> dict[str, Any]:
        """What run.json records: the base record, the encoder's sizes, the frame (10 ms) and position (20 ms)
        durations in ms, and the extractor's settings."""
        config, settings = self.model.config, self.extractor_settings
        frame_ms = 1000 * settings["hop_length"] / settings["sampling_rate"]
        return {**super().describe(), "model_type": config.model_type, "d_model": config.d_model,
                "layers": config.encoder_layers, "n_mels": config.num_mel_bins, "frame_ms": frame_ms,
                "position_ms": frame_ms * self.encoder_frames / config.max_source_positions, **settings}
