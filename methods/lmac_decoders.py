"""L-MAC's decoders: from the classifier's representations to a mask on a domain's grid (paper §3.2).

``LMACDecoder``: SpeechBrain's decoders for CNN14 (``CNN14PSI_stft`` for the STFT grid, ``CNN14PSI``
for the mel grid), whose published checkpoints load. ``GridDecoder``: the same idea for any
classifier, built from the shapes of the representations its contract declares.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from classifiers.base import Classifier, DomainModel
from datasets.audio import CLIP_SAMPLES
from foundation.frontend import DOMAINS


def _decoder_layers(domain: str, channels: tuple[int, int, int, int], d: int) -> list[tuple]:
    """(in, out, kernel, stride, padding) of ``convt1``… of SpeechBrain's decoder of ``domain``."""
    c6, c5, c4, c3 = channels
    if domain == "listenable":  # CNN14PSI_stft
        return [(c6, d, 3, (2, 4), 1), (c5, d, 3, (2, 4), 1), (d, d, (7, 4), (2, 4), 1), (c4, d, (5, 4), (2, 4), 1),
                (d, d // 2, (3, 5), (2, 2), 1), (c3, d // 2, (3, 3), (2, 4), 1),
                (d // 2, d // 4, (4, 3), (2, 2), (0, 5)), (d // 4, d // 8, (3, 4), (2, 2), (0, 2)),
                (d // 8, 1, (1, 5), (1, 4), 0)]
    if domain == "mel":  # CNN14PSI
        return [(c6, d, 3, (2, 2), 1), (c5, d, 3, (2, 2), 1), (d, d, (7, 4), (2, 4), 1), (c4, d, (5, 4), (2, 2), 1),
                (d, d, 3, (2, 2), 1), (c3, d, 3, (2, 2), 1), (d, d, (4, 3), (2, 2), 0), (d, 1, (3, 4), (2, 2), 0)]
    raise ValueError(f"no L-MAC decoder for domain {domain!r}; choose listenable or mel")


class LMACDecoder(nn.Module):
    """SpeechBrain's L-MAC decoders with separate input and internal widths.

    Args:
        representation_channels: channels of classifier blocks 6, 5, 4, 3 (paper:
            2048, 1024, 512, 256).
        width: internal width ``dim`` (paper: 2048).
        domain: "listenable": the ``CNN14PSI_stft`` layout (nine transposed convolutions,
            mask on the 513-bin STFT grid, ≈ 237 M parameters at dim 2048); "mel": the
            ``CNN14PSI`` layout (eight, mask on the 80-band mel grid). With channels
            (dim, dim/2, dim/4, dim/8) the state dict is exactly SpeechBrain's module's.

    ``forward(representations)`` → logits (B, 1, 425, 513) or (B, 1, 425, 80) for a
    431-frame input (apply a sigmoid for the mask).

    Raises:
        ValueError: unknown domain.
    """

    def __init__(self, representation_channels: tuple[int, int, int, int], width: int, domain: str = "listenable"):
        super().__init__()
        self.domain = domain
        layers = _decoder_layers(domain, representation_channels, width)
        for i, (inputs, outputs, kernel, stride, padding) in enumerate(layers, start=1):
            self.add_module(f"convt{i}", nn.ConvTranspose2d(inputs, outputs, kernel, stride, padding))
        self.tail = [f"convt{i}" for i in range(8, len(layers) + 1)]  # no nonlinearity between them
        self.nonl = nn.ReLU(True)

    def forward(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        h6, h5, h4, h3 = representations
        h = self.nonl(self.convt1(h6)) + self.nonl(self.convt2(h5))
        h = self.nonl(self.convt3(h)) + self.nonl(self.convt4(h4))
        h = self.nonl(self.convt5(h)) + self.nonl(self.convt6(h3))
        h = self.nonl(self.convt7(h))
        for name in self.tail:
            h = getattr(self, name)(h)
        return h


class GridDecoder(nn.Module):
    """A decoder for any classifier: representations of any grids → mask logits on the domain's grid.

    Each representation (B, C_i, T_i, F_i) is projected to ``width`` channels (1 × 1 convolution,
    ReLU) and resized (bilinear) to the grid of the largest one, where they are summed; three
    stages then double the grid (bilinear) and apply a 3 × 3 convolution with ReLU, halving the
    channels; a last 3 × 3 convolution gives one channel, resized (bilinear) to ``grid``.

    Args:
        channels: C_i of each representation, deepest first.
        width: channels after the projection (the profile's ``lmac_width``).
        grid: (T, F) of the mask: the domain's grid (431 × 513 on the STFT grid).

    ``forward(representations)`` → logits (B, 1, T, F) (apply a sigmoid for the mask).
    """

    def __init__(self, channels: list[int], width: int, grid: tuple[int, int]):
        super().__init__()
        self.grid = tuple(grid)
        self.project = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        widths = [width, max(width // 2, 1), max(width // 4, 1), max(width // 8, 1)]
        self.stages = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1) for a, b in zip(widths, widths[1:]))
        self.out = nn.Conv2d(widths[-1], 1, 3, padding=1)

    def forward(self, representations: tuple[torch.Tensor, ...]) -> torch.Tensor:
        largest = max((r.shape[2:] for r in representations), key=lambda s: s[0] * s[1])
        h = sum(F.relu(project(F.interpolate(r, size=tuple(largest), mode="bilinear", align_corners=False)))
                for project, r in zip(self.project, representations))
        for stage in self.stages:
            h = F.relu(stage(F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)))
        return F.interpolate(self.out(h), size=self.grid, mode="bilinear", align_corners=False)


def new_decoder(classifier: Classifier, domain: str, width: int) -> nn.Module:
    """An untrained decoder for ``classifier``'s representations in ``domain``: SpeechBrain's layout
    (``LMACDecoder``) for a classifier whose ``decoder_layout`` is "speechbrain-cnn14", else a
    ``GridDecoder`` from the representations' shapes onto the domain's grid of a 5 s clip."""
    shapes = classifier.representation_shapes(CLIP_SAMPLES)
    channels = [channels for channels, _, _ in shapes]
    if classifier.decoder_layout == "speechbrain-cnn14":
        return LMACDecoder(tuple(channels), width, domain)
    return GridDecoder(channels, width, DomainModel(classifier, DOMAINS[domain]).grid(CLIP_SAMPLES))
