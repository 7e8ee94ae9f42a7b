"""Numeric precision of a run (``--precision``): fp32, the default, or bf16 autocast.

With bf16, ``torch.autocast`` runs the convolutions and matrix products of the classifier, the
L-MAC decoder and L2I's interpreter in bfloat16 (on CPUs with AVX512-BF16 or AMX, and on GPUs),
for evaluation and for training; STFT, masks and metrics stay in float32 / float64. Results
differ from fp32 (the bench reports by how much), so the precision is part of a run's identity
and of the cache keys of what it trains.
"""
from __future__ import annotations

import torch

PRECISIONS = ("fp32", "bf16")


def autocast(device: torch.device | str, precision: str):
    """The autocast context of ``precision`` on ``device``'s type (disabled for fp32).

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"--precision {precision!r}: choose {' or '.join(PRECISIONS)}")
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=precision == "bf16")


def key_part(precision: str) -> dict:
    """What a trained model's cache key gets for ``precision``: nothing for fp32 (the keys of models
    trained before the option existed stay valid), ``{"precision": "bf16"}`` for bf16."""
    return {} if precision == "fp32" else {"precision": precision}
