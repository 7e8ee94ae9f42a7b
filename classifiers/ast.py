"""The Audio Spectrogram Transformer (Gong et al., Interspeech 2021), as ``transformers``'
``ASTForAudioClassification``, behind the classifier contract.

Features: the Kaldi-compatible log mel filterbank that ``ASTFeatureExtractor`` computes (25 ms
Hanning windows every 10 ms, pre-emphasis 0.97, DC offset removed, 128 bands from 20 Hz, log
energies), computed differentiably in torch with ``torchaudio.compliance.kaldi.fbank``: (B, T, 128)
with T = 498 frames for a 5 s clip at 16 kHz. They are the grid of the ``mel`` domain. The model
then pads them with zeros to its ``max_length`` frames (or crops them) and normalises them with
the feature extractor's mean and standard deviation, ``(x − mean) / (2·std)``, as the extractor does.
The fbank's framing is not the benchmark's STFT, so the listenable domain reaches the model through
the inverse STFT with the input's phase (``classifiers.base.DomainModel``).

Representations: the patch tokens of the last layers' outputs (deepest first), each as its grid
(B, hidden, T', F') of time × frequency patches. GradCAM reads the patch tokens that enter the last
layer, routed through ``cam_grid`` (an identity module on their grid): only through that layer's
attention do they reach the classification tokens.

``ast`` (registered) is a small AST trained on the data like CNN14 (sizes per profile in
``AST_SIZES``); ``classifiers.huggingface`` loads pretrained ones (``--classifier hf:PATH_OR_ID``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classifiers.base import Classifier, ClassifierPass, register_classifier
from foundation.frontend import resample

CLIP_FRAMES = 498
"""Fbank frames of a 5 s clip at 16 kHz: 1 + (80,000 − 400) // 160."""

AST_SIZES: dict[str, dict[str, Any]] = {
    "paper": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  patch_stride=10, epochs=100, lr=1e-4),
    "cpu": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, patch_stride=16, epochs=100, lr=3e-4),
    "tiny": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 patch_stride=16, epochs=1, lr=1e-3),
}
"""The sizes and schedules of the trained ``ast`` per profile: the paper profile is AST-Base with the
AST paper's overlapping patches (16 × 16, stride 10; not pretrained: nothing is downloaded); the cpu
profile trains in minutes on two cores, with patches that do not overlap (stride 16: a 31 × 8 grid,
a third of the attention cost). All read 128 mel bands and the 498 frames of a clip."""

REPRESENTATION_LAYERS = 3
"""How many of the last layers' outputs are the representations (fewer if the model has fewer)."""


def kaldi_fbank(waveform: torch.Tensor, num_mel_bins: int = 128, sample_rate: int = 16000) -> torch.Tensor:
    """``ASTFeatureExtractor``'s filterbank before padding and normalisation, differentiable.

    Args:
        waveform: (B, N) float at ``sample_rate`` (not rescaled, as the extractor takes it).
    Returns:
        (B, T, num_mel_bins) log mel energies, T = 1 + (N − 400) // 160 at 16 kHz.
    """
    from torchaudio.compliance.kaldi import fbank

    return torch.stack([fbank(row.unsqueeze(0), sample_frequency=sample_rate, window_type="hanning",
                              num_mel_bins=num_mel_bins, dither=0.0) for row in waveform])


class ASTClassifier(Classifier):
    """An ``ASTForAudioClassification`` with its feature extractor's settings (module docstring).

    Args:
        model: the transformers model (its ``config.num_labels`` = ``len(class_names)``).
        class_names: one per logit.
        extractor: ``num_mel_bins``, ``max_length``, ``do_normalize``, ``mean``, ``std`` and
            ``sampling_rate`` of its ``ASTFeatureExtractor`` (or the same keys in a dict).
    """

    def __init__(self, model: nn.Module, class_names: list[str], extractor: Any):
        super().__init__(class_names)
        self.model = model
        settings = extractor if isinstance(extractor, dict) else vars(extractor)
        self.extractor_settings = {k: settings[k] for k in ("num_mel_bins", "max_length", "do_normalize", "mean", "std",
                                                        "sampling_rate")}
        self.sample_rate = int(self.extractor_settings["sampling_rate"])
        config = model.config
        bands, frames = self.extractor_settings["num_mel_bins"], self.extractor_settings["max_length"]
        if (bands, frames) != (config.num_mel_bins, config.max_length):
            raise ValueError(f"its feature extractor gives {bands} bands × {frames} frames where the model reads "
                             f"{config.num_mel_bins} × {config.max_length}: save the model's own ASTFeatureExtractor")
        clip = 1 + (5 * self.sample_rate - self.sample_rate // 40) // (self.sample_rate // 100)
        if frames < clip:
            raise ValueError(f"it reads at most {frames} frames ({frames / 100:.2f} s), fewer than the {clip} of a 5 s "
                             "clip, which it would cut: use a model made for clips of 5 s or longer")
        self.grid = ((self.extractor_settings["max_length"] - config.patch_size) // config.time_stride + 1,
                     (self.extractor_settings["num_mel_bins"] - config.patch_size) // config.frequency_stride + 1)
        self.cam_grid = nn.Identity()
        layers = [m for m in model.modules() if type(m).__name__ == "ASTLayer"]
        layers[-1].register_forward_pre_hook(self._tokens_through_grid, with_kwargs=True)
        for layer in layers[-REPRESENTATION_LAYERS:]:
            layer.register_forward_hook(self._keep_representation)
        self._representations: list[torch.Tensor] = []

    @classmethod
    def build(cls, class_names: list[str], profile: str) -> ASTClassifier:
        from transformers import ASTConfig, ASTForAudioClassification

        sizes = {k: v for k, v in AST_SIZES[profile].items() if k not in ("epochs", "lr", "patch_stride")}
        stride = AST_SIZES[profile]["patch_stride"]
        config = ASTConfig(**sizes, num_mel_bins=128, max_length=CLIP_FRAMES, patch_size=16, frequency_stride=stride,
                           time_stride=stride, num_labels=len(class_names),
                           id2label=dict(enumerate(class_names)), label2id={n: i for i, n in enumerate(class_names)})
        extractor = dict(num_mel_bins=128, max_length=CLIP_FRAMES, do_normalize=True, mean=-4.2677393, std=4.5689974,
                         sampling_rate=16000)  # ASTFeatureExtractor's defaults (AudioSet statistics), 5 s clips
        return cls(ASTForAudioClassification(config), class_names, extractor)

    @classmethod
    def training_config(cls, profile: str) -> dict[str, Any]:
        return {"architecture": "ast", "patch_size": 16, "mel_bins": 128, "frames": CLIP_FRAMES, **AST_SIZES[profile]}

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) at 16 kHz → log mel filterbank (B, T, 128) at the model's rate: the extractor's features before
        padding and normalisation."""
        bands = self.extractor_settings["num_mel_bins"]
        return kaldi_fbank(resample(waveform, self.sample_rate), bands, self.sample_rate)

    def model_input(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) → the model's ``input_values`` (B, max_length, 128): zero-padded or cropped, then
        normalised, as ``ASTFeatureExtractor`` does."""
        settings = self.extractor_settings
        missing = settings["max_length"] - features.shape[1]
        values = F.pad(features, (0, 0, 0, missing)) if missing > 0 else features[:, : settings["max_length"]]
        return (values - settings["mean"]) / (2 * settings["std"]) if settings["do_normalize"] else values

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        self._representations = []
        logits = self.model(input_values=self.model_input(features)).logits
        representations, self._representations = tuple(reversed(self._representations)), []
        return ClassifierPass(logits, representations)

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (B, 2 + P, C) (two classification tokens first) → (B, C, T', F'), time × frequency."""
        frames, bands = self.grid
        return tokens[:, 2:].reshape(len(tokens), bands, frames, tokens.shape[2]).permute(0, 3, 2, 1)

    def _tokens_through_grid(self, module: nn.Module, args: tuple, kwargs: dict):
        tokens = args[0] if args else kwargs["hidden_states"]
        grid = self.cam_grid(self.to_grid(tokens))
        tokens = torch.cat([tokens[:, :2], grid.permute(0, 3, 2, 1).reshape(len(tokens), -1, tokens.shape[2])], 1)
        return ((tokens, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": tokens})

    def _keep_representation(self, module: nn.Module, args: tuple, output: Any) -> None:
        self._representations.append(self.to_grid(output[0] if isinstance(output, tuple) else output))

    def cam_layer(self) -> nn.Module:
        """The grid of the patch tokens entering the last layer, (B, hidden, T', F')."""
        return self.cam_grid

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The head, then the layers from the last down, then the patch embedding (LayerNorms kept)."""
        layers = [m for m in self.model.modules() if type(m).__name__ == "ASTLayer"]
        patches = [m for m in self.model.modules() if type(m).__name__ == "ASTPatchEmbeddings"]
        levels = [("head", [self.model.classifier])]
        for i, layer in enumerate(reversed(layers)):
            levels.append((f"head + layers {len(layers)}–{len(layers) - i}" if i else f"head + layer {len(layers)}",
                           [layer]))
        return [*levels, ("head + all layers + patch embedding", patches)]

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {**super().describe(), "hidden_size": config.hidden_size, "layers": config.num_hidden_layers,
                "patch_grid": list(self.grid), **self.extractor_settings}


@register_classifier("ast")
class TrainedAST(ASTClassifier):
    """A small Audio Spectrogram Transformer trained on the data, like CNN14 (sizes: ``AST_SIZES``)."""
