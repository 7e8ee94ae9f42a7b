"""Models that read the waveform: the wav2vec2 family of ``transformers`` (Wav2Vec2, HuBERT, WavLM,
Data2VecAudio, UniSpeech, UniSpeechSat, SEW, SEW-D, Wav2Vec2-Conformer; their
``…ForSequenceClassification`` heads) behind the classifier contract.

Features: the model's input is the waveform itself, so its own domain is ``waveform``: the samples
in frames of the model's frame rate, the product of its feature encoder's strides (320 samples,
20 ms at 16 kHz): (B, T, 320) with T = 250 for a 5 s clip (a clip whose length is not a whole
number of frames gets zeros appended, up to 19.9 ms). The model then gets the frames joined back
into the waveform and, when its ``Wav2Vec2FeatureExtractor`` has ``do_normalize``, normalised to
zero mean and unit variance per clip, ``(x − mean) / sqrt(var + 1e-7)``, exactly as the extractor
does. In the waveform domain a mask multiplies samples (M⊙X silences what it removes: zero is the
clip's mean). The listenable domain reaches the model through the inverse STFT with the input's
phase (``classifiers.base.DomainModel``), so the model hears what a listener hears.

Representations: the outputs of the last transformer layers (deepest first), each a grid on the
time axis (B, hidden, T', 1), one step per 20 ms frame (40 ms inside SEW and SEW-D, which squeeze
the sequence). GradCAM reads the frames entering the last layer, routed through ``cam_grid`` (an
identity module on their grid), as for the AST.

``wav2vec2`` (registered) is a small Wav2Vec2 trained on the data like CNN14 and the AST (sizes per
profile in ``WAV2VEC2_SIZES``); ``classifiers.huggingface`` loads pretrained models of the family.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from classifiers.base import Classifier, ClassifierPass, register_classifier
from foundation.frontend import SAMPLE_RATE, resample

WAVEFORM_MODEL_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "unispeech", "unispeech-sat", "sew", "sew-d",
                        "wav2vec2-conformer")
"""The ``config.model_type`` of the family (``transformers``' audio-classification mapping)."""

WAV2VEC2_SIZES: dict[str, dict[str, Any]] = {
    "paper": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                  conv_dim=(512,) * 7, epochs=100, lr=5e-5),
    "cpu": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                conv_dim=(32,) * 7, num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=8,
                hidden_dropout=0.1, attention_dropout=0.1, epochs=60, lr=3e-4),
    "tiny": dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                 conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, epochs=1, lr=1e-3),
}
"""The sizes and schedules of the trained ``wav2vec2`` per profile: the paper profile is Wav2Vec2-Base's
architecture (not pretrained: nothing is downloaded); the cpu profile (2 layers, 32-channel feature
encoder, 165 k parameters) trains in 10 minutes on two cores.
All keep Wav2Vec2's feature encoder strides (5, 2, 2, 2, 2, 2, 2): one frame per 20 ms. No time
masking and no layer drop: the model is trained as it is explained."""

REPRESENTATION_LAYERS = 3
"""How many of the last layers' outputs are the representations (fewer if the model has fewer)."""


def normalise(waveform: torch.Tensor) -> torch.Tensor:
    """``Wav2Vec2FeatureExtractor``'s ``do_normalize``: (B, N) → zero mean, unit variance per clip,
    ``(x − mean) / sqrt(var + 1e-7)`` with the population variance, differentiable."""
    mean = waveform.mean(1, keepdim=True)
    return (waveform - mean) / torch.sqrt(waveform.var(1, unbiased=False, keepdim=True) + 1e-7)


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    """The transformer layers of a ``transformers`` audio encoder (``….encoder.layers`` or ``….encoder.layer``).

    Raises:
        ValueError: the model has no such list.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.endswith(("encoder.layers", "encoder.layer")) and len(module):
            return module
    raise ValueError(f"{type(model).__name__} has no encoder.layers: not a transformers audio encoder")


def encoder_levels(model: nn.Module, bottom: str, bottom_modules: list[nn.Module]) -> list[tuple[str, list[nn.Module]]]:
    """The sanity check's levels of a ``transformers`` audio classifier, top-down: the head (its ``projector``
    and ``classifier``), then the encoder layers from the last down, then ``bottom`` (the modules below the
    layers, e.g. the feature encoder), each level (name of the cumulative level, modules it adds)."""
    layers = encoder_layers(model)
    levels = [("head", [m for name, m in model.named_children() if name in ("projector", "classifier")])]
    for i, layer in enumerate(reversed(layers)):
        levels.append((f"head + layers {len(layers)}–{len(layers) - i}" if i else f"head + layer {len(layers)}",
                       [layer]))
    return [*levels, (f"head + all layers + {bottom}", bottom_modules)]


class TokenGrid:
    """Hooks on a ``transformers`` encoder that give its layers' token sequences as grids: the outputs of
    the last ``REPRESENTATION_LAYERS`` layers are kept (``take``), and the tokens entering the last layer
    pass through ``cam_grid`` (an identity module GradCAM reads).

    Args:
        layers: the encoder's layers; to_grid: tokens (B, L, C) → grid (B, C, T', F');
            from_grid: the inverse, grid → tokens; cam_grid: the identity module.
    """

    def __init__(self, layers: nn.ModuleList, to_grid, from_grid, cam_grid: nn.Module):
        self.to_grid, self.from_grid, self.cam_grid = to_grid, from_grid, cam_grid
        self.kept: list[torch.Tensor] = []
        layers[-1].register_forward_pre_hook(self._through_grid, with_kwargs=True)
        for layer in layers[-REPRESENTATION_LAYERS:]:
            layer.register_forward_hook(self._keep)

    def take(self) -> tuple[torch.Tensor, ...]:
        """The kept grids, deepest first, and forget them."""
        kept, self.kept = tuple(reversed(self.kept)), []
        return kept

    def _through_grid(self, module: nn.Module, args: tuple, kwargs: dict):
        tokens = args[0] if args else kwargs["hidden_states"]
        tokens = self.from_grid(self.cam_grid(self.to_grid(tokens)), tokens)
        return ((tokens, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": tokens})

    def _keep(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.kept.append(self.to_grid(output[0] if isinstance(output, tuple) else output))


def time_grid(tokens: torch.Tensor) -> torch.Tensor:
    """Frame tokens (B, T, C) → their grid on the time axis (B, C, T, 1)."""
    return tokens.transpose(1, 2).unsqueeze(-1)


def time_tokens(grid: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The inverse of ``time_grid``: (B, C, T, 1) → (B, T, C)."""
    return grid.squeeze(-1).transpose(1, 2)


class WaveformClassifier(Classifier):
    """A ``…ForSequenceClassification`` model of the wav2vec2 family with its feature extractor's
    settings (module docstring).

    Args:
        model: the transformers model (its ``config.num_labels`` = ``len(class_names)``).
        class_names: one per logit.
        extractor: ``do_normalize`` and ``sampling_rate`` of its ``Wav2Vec2FeatureExtractor`` (or a dict).
    """

    feature_domain = "waveform"

    def __init__(self, model: nn.Module, class_names: list[str], extractor: Any):
        super().__init__(class_names)
        self.model = model
        settings = extractor if isinstance(extractor, dict) else vars(extractor)
        self.extractor_settings = {k: settings[k] for k in ("do_normalize", "sampling_rate")}
        if settings.get("feature_size", 1) != 1:
            raise ValueError(f"its feature extractor gives {settings['feature_size']} values per step; a "
                             f"{model.config.model_type} model reads the waveform (a Wav2Vec2FeatureExtractor with "
                             "feature_size 1): save the model's own feature extractor")
        self.sample_rate = int(self.extractor_settings["sampling_rate"])
        self.frame = math.prod(model.config.conv_stride)
        self.cam_grid = nn.Identity()
        self.tokens = TokenGrid(encoder_layers(model), time_grid, time_tokens, self.cam_grid)

    @classmethod
    def build(cls, class_names: list[str], profile: str) -> WaveformClassifier:
        from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

        sizes = {k: v for k, v in WAV2VEC2_SIZES[profile].items() if k not in ("epochs", "lr")}
        config = Wav2Vec2Config(**sizes, mask_time_prob=0.0, layerdrop=0.0, num_labels=len(class_names),
                                id2label=dict(enumerate(class_names)),
                                label2id={n: i for i, n in enumerate(class_names)})
        return cls(Wav2Vec2ForSequenceClassification(config), class_names,
                   dict(do_normalize=True, sampling_rate=SAMPLE_RATE))  # Wav2Vec2FeatureExtractor's defaults

    @classmethod
    def training_config(cls, profile: str) -> dict[str, Any]:
        return {"architecture": "wav2vec2", **WAV2VEC2_SIZES[profile]}

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) at 16 kHz → the waveform at the model's rate in frames (B, T, frame), zero-padded to whole frames."""
        waveform = resample(waveform, self.sample_rate)
        padded = F.pad(waveform, (0, -waveform.shape[1] % self.frame))
        return padded.view(len(padded), -1, self.frame)

    def model_input(self, features: torch.Tensor) -> torch.Tensor:
        """Frames (B, T, frame) → the model's ``input_values`` (B, T·frame), normalised as the extractor does."""
        waveform = features.reshape(len(features), -1)
        return normalise(waveform) if self.extractor_settings["do_normalize"] else waveform

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        self.tokens.take()
        logits = self.model(input_values=self.model_input(features)).logits
        return ClassifierPass(logits, self.tokens.take())

    def cam_layer(self) -> nn.Module:
        """The grid of the frames entering the last layer, (B, hidden, T', 1)."""
        return self.cam_grid

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """The head, then the layers from the last down, then the feature encoder and its projection."""
        return encoder_levels(self.model, "feature encoder", [m for name, m in self.model.named_modules()
                                                              if name.endswith(("feature_extractor",
                                                                                "feature_projection"))])

    def describe(self) -> dict[str, Any]:
        config = self.model.config
        return {**super().describe(), "model_type": config.model_type, "hidden_size": config.hidden_size,
                "layers": config.num_hidden_layers, "frame_samples": self.frame, **self.extractor_settings}


@register_classifier("wav2vec2")
class TrainedWav2Vec2(WaveformClassifier):
    """A small Wav2Vec2 trained on the data from scratch, like CNN14 and the AST (sizes: ``WAV2VEC2_SIZES``)."""
