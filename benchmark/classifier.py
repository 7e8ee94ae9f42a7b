"""CNN14 audio classifier (PANNs layout) with a width parameter (BENCHMARK.md §2).

State-dict names follow SpeechBrain's ``speechbrain.lobes.models.Cnn14.Cnn14``
(``norm0``, ``conv_block{1..6}.conv{1,2}``/``norm{1,2}``), so that a width-64
model (64…2048 channels, ≈ 80 M parameters with the head) loads SpeechBrain's
``embedding_model.ckpt``. Unlike SpeechBrain's, every ReLU is its own ``nn.ReLU``
module, so that Captum's Guided Backprop modifies its backward pass (with
functional ReLU it silently returns the plain gradient).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from benchmark.frontend import N_MELS, Domain


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


class AudioClassifier(nn.Module):
    """CNN14 embedding + linear head: log1p mel (B, T, 80) → logits (B, n_classes)."""

    def __init__(self, n_classes: int, width: int = 64):
        super().__init__()
        self.embedding_model = Cnn14(width=width)
        self.head = nn.Linear(self.embedding_model.embedding_dim, n_classes)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedding_model(mel)[0])

    def forward_with_representations(self, mel: torch.Tensor):
        """Logits (B, n_classes) and the block 6, 5, 4, 3 outputs (see ``Cnn14``)."""
        embedding, representations = self.embedding_model(mel)
        return self.head(embedding), representations

    @property
    def last_conv_block(self) -> nn.Module:
        """The layer GradCAM-family methods read (block 6)."""
        return self.embedding_model.conv_block6


class ClassifierPass(NamedTuple):
    """One classifier pass: logits (B, n_classes) and the block 6, 5, 4, 3 outputs
    (see ``Cnn14``), the input of L-MAC's decoder and L2I's interpreter."""

    logits: torch.Tensor
    representations: tuple[torch.Tensor, ...]

    def rows(self, start: int, stop: int) -> "ClassifierPass":
        """The pass of samples ``start`` … ``stop − 1``."""
        return ClassifierPass(self.logits[start:stop], tuple(block[start:stop] for block in self.representations))


class DomainModel(nn.Module):
    """The classifier seen from one domain: ``forward(X)`` with X on the domain's grid.

    For the listenable domain X = log1p|STFT| (B, T, 513) goes through the STFT→Mel
    wrapper; for the mel domain X (B, T, 80) is the classifier's input. This is the
    function every explainer attributes and every metric queries (§3, §5).

    ``per_sample`` (the harness on CPU): passes without gradient tracking take the
    samples one at a time. oneDNN picks its convolution algorithm by batch size, and
    per-sample passes make every per-sample result independent of the batch size at
    no cost on CPU (``run_benchmark.py bench``).
    """

    def __init__(self, classifier: AudioClassifier, domain: Domain, per_sample: bool = False):
        super().__init__()
        self.classifier = classifier
        self.domain = domain
        self.per_sample = per_sample

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) for X (B, T, F)."""
        return self.forward_with_representations(features).logits

    def forward_with_representations(self, features: torch.Tensor) -> ClassifierPass:
        """Logits and block representations for X (B, T, F): one pass of every sample."""
        if torch.is_grad_enabled() or not self.per_sample:
            return ClassifierPass(*self.classifier.forward_with_representations(self.domain.classifier_input(features)))
        passes = [self.classifier.forward_with_representations(self.domain.classifier_input(x))
                  for x in features.split(1)]
        return ClassifierPass(torch.cat([logits for logits, _ in passes]),
                              tuple(torch.cat(blocks) for blocks in zip(*(blocks for _, blocks in passes))))
