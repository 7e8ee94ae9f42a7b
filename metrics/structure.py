"""Structural metrics of a mask / saliency map: SPS, COMP, MM (BENCHMARK.md §5).

SPS and COMP are the Quantus definitions (Hedström et al., 2023):
`quantus.Sparseness` (Gini index, Chalasani et al., 2020) and
`quantus.Complexity` (entropy, Bhatt et al., 2020), both with abs=True,
normalise=True. Quantus normalises by the max over the whole batch; the L-MAC
reference evaluates at batch size 1, so here each sample is normalised by its
own max. Everything is vectorised over the batch and computed in float64
(431×513 maps have 221,103 entries).
"""

import torch


def _flat(masks: torch.Tensor) -> torch.Tensor:
    """(B, ...) → (B, n) float64; checks the shape."""
    if not isinstance(masks, torch.Tensor) or masks.ndim < 2:
        raise ValueError(f"masks must be a (B, ...) tensor with ndim >= 2, got {getattr(masks, 'shape', type(masks))}")
    if masks.is_complex():
        raise ValueError("masks must be real-valued")
    if masks.shape[0] == 0 or masks[0].numel() == 0:
        raise ValueError(f"masks must be non-empty, got shape {tuple(masks.shape)}")
    return masks.reshape(masks.shape[0], -1).double()


def _normalised_abs(masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """a = |M| / max|M| per sample, (B, n) float64, and validity (B,) bool.

    A sample is invalid when it holds a NaN/inf or is all zero; its row of a is
    then meaningless (the callers turn its score into NaN).
    """
    m = _flat(masks).abs()
    peak = m.amax(dim=1)
    valid = torch.isfinite(m).all(dim=1) & (peak > 0)
    a = m / torch.where(valid, peak, 1.0)[:, None]
    return a, valid


def sparseness(masks: torch.Tensor) -> torch.Tensor:
    """SPS: Gini index of each map (higher = sparser).

    With a = |M|/max|M| + 1e-7 flattened and sorted ascending (a_(1) ≤ … ≤ a_(n)):
    SPS = Σ_i (2i − n − 1)·a_(i) / (n·Σ_i a_(i)), i = 1..n. Equals
    ``quantus.Sparseness(abs=True, normalise=True)`` evaluated one map at a time.

    Args:
        masks: (B, ...) real tensor, e.g. (B, T, F); each sample is flattened.
    Returns:
        (B,) float64 tensor in [0, 1 − 1/n); NaN for an invalid map (all zero, or
        any NaN/inf).
    Raises:
        ValueError: if masks has ndim < 2, is empty or complex.
    """
    a, valid = _normalised_abs(masks)
    a = torch.sort(a + 1e-7, dim=1).values
    n = a.shape[1]
    weight = 2 * torch.arange(1, n + 1, dtype=torch.float64, device=a.device) - n - 1
    sps = (a * weight).sum(dim=1) / (n * a.sum(dim=1))
    return torch.where(valid, sps, torch.nan)


def complexity(masks: torch.Tensor) -> torch.Tensor:
    """COMP: entropy in nats of each map seen as a distribution (lower = simpler).

    With a = |M|/max|M| flattened and p = a/Σa: COMP = −Σ p·ln p, with
    0·ln 0 = 0. Equals ``quantus.Complexity(abs=True, normalise=True)`` one map
    at a time, up to Quantus's +1e-12 inside the log (relative effect < 1e-6).

    Args:
        masks: (B, ...) real tensor, e.g. (B, T, F); each sample is flattened.
    Returns:
        (B,) float64 tensor in [0, ln n]; NaN for an invalid map (all zero, or
        any NaN/inf).
    Raises:
        ValueError: if masks has ndim < 2, is empty or complex.
    """
    a, valid = _normalised_abs(masks)
    p = a / a.sum(dim=1, keepdim=True)
    comp = -torch.special.xlogy(p, p).sum(dim=1)
    return torch.where(valid, comp, torch.nan)


def mask_mean(masks: torch.Tensor) -> torch.Tensor:
    """MM: mean value of each mask (signed; no abs, no normalisation).

    Args:
        masks: (B, ...) real tensor; each sample is flattened.
    Returns:
        (B,) float64 tensor; NaN/inf in a mask propagate to its mean.
    Raises:
        ValueError: if masks has ndim < 2, is empty or complex.
    """
    return _flat(masks).mean(dim=1)


def structure_scores(masks: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"SPS": sparseness, "COMP": complexity, "MM": mask_mean}, each (B,) float64.

    See the three functions for definitions, ranges and errors.
    """
    return {"SPS": sparseness(masks), "COMP": complexity(masks), "MM": mask_mean(masks)}
