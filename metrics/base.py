"""A metric is one unit: its per-sample computation, name, direction, range, description and source
together (``Metric``), registered (``register_metric``). The pipeline scores a batch of masks by
iterating the registered metrics that apply to the run; the tables read their direction,
description and digits from them.

To add a metric: one new module in ``metrics/`` that calls ``register_metric(Metric(...))``, plus
its import line in ``metrics/__init__.py`` (or ``--import`` a module of your own). Its column then
appears in ``per_sample.csv``, ``table.csv`` and the Markdown table.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from metrics.robustness import RobustnessDraws


@dataclass(frozen=True)
class MetricInputs:
    """What a metric reads for one batch of masks of one method (protocol §5).

    mask: (B, T_m, F) in [0, 1]; logits, logits_in, logits_out: (B, C) logits of the classifier on
    X, M⊙X and (1−M)⊙X; the explained class is ``logits.argmax(1)``; ad_softmax_twice: AD as the
    published code (protocol §7); clean_target: (B, T, 513) bool binarised clean spectrograms, or
    None (mel domain); target_dominated: (B, T, F) bool ideal binary masks, or None (clean samples);
    curves: {"Ins": (B, K), "Del": (B, K)} probabilities of the explained class with the k % of bins
    the mask ranks first kept or removed (``metrics.curves.CURVE_FRACTIONS``), or None (no --curves);
    distractor_dominated: (B, T, F) bool, the planted distractor's bins (all False in a sample without
    one), or None (no planted cues: every dataset but the controlled one, whose ``target_dominated`` is
    then the cue's bins); robustness: the draws of re-explained perturbed inputs
    (``metrics.robustness.RobustnessDraws``), or None (no --robustness).
    """

    mask: torch.Tensor
    logits: torch.Tensor
    logits_in: torch.Tensor
    logits_out: torch.Tensor
    ad_softmax_twice: bool = True
    clean_target: torch.Tensor | None = None
    target_dominated: torch.Tensor | None = None
    curves: dict[str, np.ndarray] | None = None
    distractor_dominated: torch.Tensor | None = None
    robustness: RobustnessDraws | None = None

    @property
    def target(self) -> torch.Tensor:
        """(B,) long: the explained class, the classifier's prediction on X."""
        return self.logits.argmax(1)


@dataclass(frozen=True)
class Metric:
    """One metric.

    name: the column in ``per_sample.csv`` and the tables (the paper's name where it has one).
    higher_is_better: True (↑), False (↓) or None (no direction).
    description: one line, definition and range, listed under every table.
    compute: ``MetricInputs`` → (B,) float64 per-sample values (tensor or array); NaN where undefined.
    source: where the definition comes from (paper section, publication or docs page).
    column: "paper" (a column of the paper's tables), "added" (a column this benchmark adds),
        "note" (reported in a note under the table), "per-sample" (``per_sample.csv`` only).
    digits: decimals in the tables.
    needs_curves: computed only with ``--curves`` (``MetricInputs.curves`` given).
    needs_planted_cue: computed only where the truth is a planted cue (the controlled dataset,
        ``MetricInputs.distractor_dominated`` given).
    needs_robustness: computed only with ``--robustness`` (``MetricInputs.robustness`` given: the explainer
        re-run on perturbed inputs, ``metrics.robustness``).
    """

    name: str
    higher_is_better: bool | None
    description: str
    compute: Callable[[MetricInputs], torch.Tensor | np.ndarray]
    source: str = ""
    column: str = "paper"
    digits: int = 3
    needs_curves: bool = False
    needs_planted_cue: bool = False
    needs_robustness: bool = False

    def applies(self, inputs: MetricInputs) -> bool:
        """Whether this metric is computed for ``inputs`` (the curves' only with --curves, the planted
        cue's only on the controlled dataset, the robustness metrics only with --robustness)."""
        return ((not self.needs_curves or inputs.curves is not None)
                and (not self.needs_planted_cue or inputs.distractor_dominated is not None)
                and (not self.needs_robustness or inputs.robustness is not None))


_REGISTRY: dict[str, Metric] = {}


def register_metric(metric: Metric) -> Metric:
    """Add ``metric`` to the registry, after those registered before it (the column order).

    Raises:
        ValueError: another metric is registered under its name, or its column kind is unknown.
    """
    if metric.name in _REGISTRY and _REGISTRY[metric.name] != metric:
        raise ValueError(f"a metric is already registered as {metric.name!r}")
    if metric.column not in ("paper", "added", "note", "per-sample"):
        raise ValueError(f"metric {metric.name}: column must be paper, added, note or per-sample")
    _REGISTRY[metric.name] = metric
    return metric


def registered_metrics() -> dict[str, Metric]:
    """Every registered metric by name, in registration order."""
    return dict(_REGISTRY)


def reported_metrics() -> dict[str, Metric]:
    """The metrics the tables report: in columns ("paper", "added") or in a note ("note")."""
    return {name: m for name, m in _REGISTRY.items() if m.column != "per-sample"}


def table_columns() -> list[str]:
    """The metric columns of the tables, in order: the paper's, then the added ones."""
    return [name for name, m in _REGISTRY.items() if m.column in ("paper", "added")]


def paper_columns() -> list[str]:
    """The metric columns of the paper's tables, in order: AI AD AG FF Fid-In SPS COMP MM."""
    return [name for name, m in _REGISTRY.items() if m.column == "paper"]


def arrow(name: str) -> str:
    """"↑", "↓" or "" (no direction) for metric ``name``; KeyError if unknown."""
    better = _REGISTRY[name].higher_is_better
    return "" if better is None else ("↑" if better else "↓")


def nan_values(inputs: MetricInputs) -> torch.Tensor:
    """(B,) float64 NaN: the value of a metric that is undefined for the batch."""
    return torch.full((len(inputs.mask),), float("nan"), dtype=torch.float64)
