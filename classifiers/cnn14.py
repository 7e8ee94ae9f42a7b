"""CNN14 audio classifier (PANNs layout) with a width parameter, the paper's classifier (§2).

State-dict names follow SpeechBrain's ``speechbrain.lobes.models.Cnn14.Cnn14``
(``norm0``, ``conv_block{1..6}.conv{1,2}``/``norm{1,2}``), so that a width-64
model (64…2048 channels, ≈ 80 M parameters with the head) loads SpeechBrain's
``embedding_model.ckpt``. Unlike SpeechBrain's, every ReLU is its own ``nn.ReLU``
module, so that Captum's Guided Backprop modifies its backward pass (with
functional ReLU it silently returns the plain gradient).
"""
from __future__ import annotations

import torch
from torch import nn

from classifiers.base import Classifier, ClassifierPass, register_classifier
from foundation.frontend import N_MELS, log1p_mel, stft, stft_to_mel
from foundation.profiles import PROFILES


class ConvBlock(nn.Module):
    """Two 3×3 conv + BatchNorm + ReLU, then average pooling.

    (B, C_in, T, F) → (B, C_out, T // p_t, F // p_f).
    """

    def __init__(self, in_channels: int, out_channels: int, pool_size: tuple[int, int]):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(pool_size)
        for conv in (self.conv1, self.conv2):
            nn.init.xavier_uniform_(conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.norm1(self.conv1(x)))
        x = self.relu2(self.norm2(self.conv2(x)))
        return self.pool(x)


class Cnn14(nn.Module):
    """CNN14 embedding network: log1p mel features → embedding and block outputs.

    Args:
        width: channels of the first block; blocks have width × (1, 2, 4, 8, 16, 32)
            channels (paper: 64 → embedding 2048; CPU profile: 8 → 256).
        mel_bins: mel bands of the input (80).
        dropout: dropout after each block (0.2 as in PANNs / SpeechBrain).

    ``forward(mel)`` with mel (B, T, 80) returns ``(embedding, representations)``:
    embedding (B, 32·width) = max over time + mean over time of the frequency-mean of
    block 6; representations = outputs of blocks 6, 5, 4, 3 (for T = 431:
    (B, 32w, 13, 2), (B, 16w, 13, 2), (B, 8w, 26, 5), (B, 4w, 53, 10)), the input of
    L-MAC's decoder (SpeechBrain's ``return_reps=True`` order).
    """

    def __init__(self, width: int = 64, mel_bins: int = N_MELS, dropout: float = 0.2):
        super().__init__()
        self.width = width
        self.norm0 = nn.BatchNorm2d(mel_bins)
        channels = [1] + [width * 2**i for i in range(6)]
        for i in range(6):
            pool = (2, 2) if i < 5 else (1, 1)
            self.add_module(f"conv_block{i + 1}", ConvBlock(channels[i], channels[i + 1], pool))
        self.dropout = nn.Dropout(dropout)

    @property
    def embedding_dim(self) -> int:
        return self.width * 32

    @property
    def representation_channels(self) -> tuple[int, int, int, int]:
        """Channels of blocks 6, 5, 4, 3."""
        return (32 * self.width, 16 * self.width, 8 * self.width, 4 * self.width)

    def forward(self, mel: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        x = mel.unsqueeze(1).transpose(1, 3)  # (B, F, T, 1): BatchNorm over mel bands
        x = self.norm0(x).transpose(1, 3)  # (B, 1, T, F)
        outputs = []
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x)
            outputs.append(x)
            x = self.dropout(x)
        x = x.mean(dim=3)
        embedding = x.max(dim=2).values + x.mean(dim=2)
        return embedding, (outputs[5], outputs[4], outputs[3], outputs[2])


@register_classifier("cnn14")
class CNN14Classifier(Classifier):
    """CNN14 embedding + linear head (§2), the paper's classifier: log1p mel features (B, T, 80) →
    logits (B, n_classes) and the block 6, 5, 4, 3 outputs (``Cnn14``).

    Its features are ``log1p(Fbank(|STFT|))`` of the benchmark's STFT, so it reads the listenable
    domain directly through the STFT→Mel wrapper (``frontend.stft_to_mel``), and L-MAC uses
    SpeechBrain's decoder layouts on its representations. State-dict names (``embedding_model.*``,
    ``head.*``) are those of SpeechBrain's recipe, so its checkpoints load
    (``benchmark.speechbrain_import``).
    """

    reads_stft = True
    decoder_layout = "speechbrain-cnn14"

    def __init__(self, class_names: list[str], width: int = 64):
        super().__init__(class_names)
        self.embedding_model = Cnn14(width=width)
        self.head = nn.Linear(self.embedding_model.embedding_dim, len(class_names))

    @classmethod
    def build(cls, class_names: list[str], profile: str) -> CNN14Classifier:
        return cls(class_names, width=PROFILES[profile]["classifier_width"])

    @classmethod
    def training_config(cls, profile: str) -> dict:
        sizes = PROFILES[profile]
        return {"width": sizes["classifier_width"], "epochs": sizes["classifier_epochs"], "lr": sizes["classifier_lr"]}

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms at 16 kHz → log1p mel features (B, T, 80)."""
        return log1p_mel(stft(waveform))

    def listenable_features(self, log1p_stft: torch.Tensor) -> torch.Tensor:
        """X = log1p|STFT| (B, T, 513) → log1p mel (B, T, 80) through the STFT→Mel wrapper."""
        return stft_to_mel(log1p_stft)

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits (B, n_classes) and the block 6, 5, 4, 3 outputs (see ``Cnn14``)."""
        embedding, representations = self.embedding_model(features)
        return ClassifierPass(self.head(embedding), representations)

    def cam_layer(self) -> nn.Module:
        """Block 6, (B, 32·width, T/32, 2) for 80 mel bands."""
        return self.embedding_model.conv_block6

    def randomisation_levels(self) -> list[tuple[str, list[nn.Module]]]:
        """Conv blocks 6, 5, …, 1, then the head."""
        blocks = [getattr(self.embedding_model, f"conv_block{6 - i}") for i in range(6)]
        names = ["block 6", *(f"blocks 6–{5 - i}" for i in range(5))]
        return [*((name, [block]) for name, block in zip(names, blocks)), ("blocks 6–1 + head", [self.head])]

    def describe(self) -> dict:
        return {**super().describe(), "width": self.embedding_model.width}
