"""PIQ's interpreter network (Paissan, Subakan, Ravanelli et al., arXiv 2303.12659), after SpeechBrain's
``VectorQuantizedPSI_Audio`` (``speechbrain.lobes.models.PIQ``, recipe ``recipes/ESC50/interpret``).

The classifier's deepest representation h (the recipe's ``hcat``: CNN14's block 6 output) passes an
adapter (SpeechBrain's ``ResBlockAudio``), a strided 4 × 4 convolution that halves its grid
(``adapter_reduce_dim``), SpeechBrain's class-partitioned vector quantiser (``VQEmbedding``: K keys
of h's channel dimension, about K / classes keys per class, the quantiser restricted to the keys of
the given class; straight-through gradient), the transposed convolution back to h's grid, and a
decoder of four upsampling stages (transposed convolution, ReLU, BatchNorm, as the recipe's) onto
the grid of the domain: mask logits (B, 1, T, F).

Adaptations to any classifier's shapes: the recipe's decoder fits its Conv2d classifier's 26 × 32
grid to 417 × 513 with four ×2 stages and a 12 × 12 output layer. Here each stage's stride per axis
is a power of two chosen so that the four stages together come closest to the domain's grid (the
recipe's ×2 stages where the shapes are the recipe's), a 3 × 3 layer gives one channel, and a
bilinear resize puts it on the grid (CNN14's 13 × 2 block 6: ×32 × ×256 to 416 × 512, then 431 × 513).
The grid reduction is skipped when an axis of h has fewer than 2 cells (a transformer's (T, 1)).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.PIQ import ResBlockAudio, VQEmbedding, weights_init
from torch import nn

from classifiers.base import Classifier, DomainModel
from datasets.audio import CLIP_SAMPLES
from foundation.frontend import DOMAINS

STAGES = 4
"""Upsampling stages of the decoder (the recipe's four)."""


def upsampling_strides(source: tuple[int, int], target: tuple[int, int], stages: int = STAGES) -> list[tuple[int, int]]:
    """(time, frequency) stride of each stage, powers of two whose products are the powers of two closest
    to target / source on each axis (1 where the grid needs no growth), the doublings spread evenly."""
    doublings = [max(0, round(math.log2(t / s))) for s, t in zip(source, target)]
    return [tuple(2 ** (d // stages + (i < d % stages)) for d in doublings) for i in range(stages)]


def _transposed(inputs: int, outputs: int, stride: tuple[int, int]) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies each axis by its stride exactly: kernel 2s, padding s/2
    (the recipe's 4, 2, 1 for s = 2), or kernel 3, padding 1 for s = 1."""
    kernel = tuple(2 * s if s > 1 else 3 for s in stride)
    padding = tuple(s // 2 if s > 1 else 1 for s in stride)
    return nn.ConvTranspose2d(inputs, outputs, kernel, stride, padding)


class PIQDecoder(nn.Module):
    """Quantised representation (B, C, T_i, F_i) → mask logits (B, 1, T, F) on ``grid`` (or the grid
    given to ``forward``): ``STAGES`` × (transposed convolution, ReLU, BatchNorm) at ``width`` channels,
    a 3 × 3 transposed convolution to one channel, a bilinear resize when the grid is not reached."""

    def __init__(self, channels: int, width: int, source: tuple[int, int], grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        layers: list[nn.Module] = []
        for i, stride in enumerate(upsampling_strides(tuple(source), self.grid)):
            layers += [_transposed(channels if i == 0 else width, width, stride), nn.ReLU(True), nn.BatchNorm2d(width)]
        self.stages = nn.Sequential(*layers)
        self.out = nn.ConvTranspose2d(width, 1, 3, 1, 1)

    def forward(self, quantised: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        grid = tuple(grid or self.grid)
        logits = self.out(self.stages(quantised))
        if tuple(logits.shape[2:]) != grid:
            logits = F.interpolate(logits, size=grid, mode="bilinear", align_corners=False)
        return logits


class PIQInterpreter(nn.Module):
    """The adapter, vector quantiser and decoder of PIQ (module docstring).

    Args:
        channels: C of the classifier's deepest representation (the quantiser's dimension, as the
            recipe's ``dim``; CNN14: 32 × its width).
        source: (T_i, F_i) of that representation for a 5 s clip.
        grid: (T, F) of the domain's input for a 5 s clip (431 × 513 listenable, 431 × 80 mel for CNN14).
        width: channels of the decoder's stages (the profile's ``piq_width``; the recipe: 256).
        codebook_size: K (the recipe's 1024), at least ``n_classes``.
        n_classes: classes of the classifier, among which the keys are partitioned.

    ``forward(representation, labels, grid=None)`` → (mask logits (B, 1, T, F), h_e the
    representation the quantiser reads (B, C, T', F'), its quantised keys z_q (same shape, gradient
    to the codebook only)): the recipe's ``(xhat, hcat, z_q_x)``.
    """

    def __init__(self, channels: int, source: tuple[int, int], grid: tuple[int, int], width: int,
                 codebook_size: int, n_classes: int):
        super().__init__()
        if codebook_size < n_classes:
            raise ValueError(f"PIQ's codebook_size {codebook_size} is smaller than the classifier's {n_classes} "
                             "classes, whose keys it partitions; pass --set piq.codebook_size with at least that")
        self.adapter = ResBlockAudio(channels)
        self.reduce = min(source) >= 2
        if self.reduce:
            self.down = nn.Conv2d(channels, channels, 4, 2, 1)
            self.up = nn.ConvTranspose2d(channels, channels, 4, 2, 1)
        self.codebook = VQEmbedding(codebook_size, channels, numclasses=n_classes, activate_class_partitioning=True,
                                    shared_keys=0)
        self.decoder = PIQDecoder(channels, width, source, grid)
        self.apply(weights_init)  # Xavier for the convolutions, as the recipe's

    def forward(self, representation: torch.Tensor, labels: torch.Tensor,
                grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        adapted = self.adapter(representation)
        encoded = self.down(adapted) if self.reduce else adapted
        straight_through, quantised = self.codebook.straight_through(encoded, labels.to(encoded.device))
        if self.reduce:
            straight_through = self.up(straight_through, output_size=adapted.shape[2:])
        return self.decoder(straight_through, grid), encoded, quantised


def new_interpreter(classifier: Classifier, domain: str, width: int, codebook_size: int) -> PIQInterpreter:
    """An untrained ``PIQInterpreter`` for ``classifier``'s deepest representation in ``domain``."""
    channels, frames, bins = classifier.representation_shapes(CLIP_SAMPLES)[0]
    grid = DomainModel(classifier, DOMAINS[domain]).grid(CLIP_SAMPLES)
    return PIQInterpreter(channels, (frames, bins), grid, width, codebook_size, len(classifier.class_names))
