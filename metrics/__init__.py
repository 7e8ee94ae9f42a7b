"""Metrics of the benchmark (BENCHMARK.md §5), with a self-describing catalogue.

Each metric returns per-sample values; aggregation (mean, CI, count of valid
samples) is a separate step. Table headers and "best" markers should read the
direction from ``METRICS`` (DESIGN.md, Metrics).
"""

from dataclasses import dataclass

from metrics.clean_spectrogram import binarised_spectrogram, clean_spectrogram_bce
from metrics.faithfulness import faithfulness_scores
from metrics.structure import complexity, mask_mean, sparseness, structure_scores


@dataclass(frozen=True)
class MetricInfo:
    """One metric's description.

    name: column name as in the paper's tables (and in per_sample.csv).
    higher_is_better: True (↑), False (↓) or None (no direction, MM).
    description: one line: definition and range (listed under every table).
    paper_column: True for the columns of the paper's tables; False for extra
        per-sample columns reported in a note (BCE-clean).
    """

    name: str
    higher_is_better: bool | None
    description: str
    paper_column: bool = True


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("AI", True, "Average Increase: 100·1[p_in_c > p_c], in {0, 100}"),
        MetricInfo("AD", False, "Average Drop: 100·max(0, q_c − q_in_c)/q_c, q = softmax(p) by default "
                                "(published code) or p; in [0, 100]"),
        MetricInfo("AG", True, "Average Gain: 100·max(0, p_in_c − p_c)/(1 − p_c), in [0, 100]"),
        MetricInfo("FF", True, "Faithfulness: p_c − p_out_c, in [−1, 1]"),
        MetricInfo("Fid-In", True, "Input Fidelity: 1[argmax p_in = c], in {0, 1}"),
        MetricInfo("SPS", True, "Sparseness: Gini index of |M|/max|M| (Quantus), in [0, 1); NaN if invalid map"),
        MetricInfo("COMP", False, "Complexity: entropy (nats) of |M|/Σ|M| (Quantus), in [0, ln n]; NaN if invalid map"),
        MetricInfo("MM", None, "Mask Mean: mean of M"),
        MetricInfo("BCE-clean", False, "BCE (nats) of a listenable mask against the binarised clean "
                                       "spectrogram 1[X_clean ≥ 0.35·max X_clean], L-MAC FT's guidance target; NaN "
                                       "in the mel domain",
                   paper_column=False),
    )
}
PAPER_COLUMNS = [m.name for m in METRICS.values() if m.paper_column]
"""The metric columns of the paper's tables, in order: AI AD AG FF Fid-In SPS COMP MM."""


def arrow(name: str) -> str:
    """"↑", "↓" or "" (no direction) for metric ``name``; KeyError if unknown."""
    better = METRICS[name].higher_is_better
    return "" if better is None else ("↑" if better else "↓")


__all__ = [
    "MetricInfo", "METRICS", "PAPER_COLUMNS", "arrow",
    "binarised_spectrogram", "clean_spectrogram_bce", "faithfulness_scores",
    "sparseness", "complexity", "mask_mean", "structure_scores",
]
