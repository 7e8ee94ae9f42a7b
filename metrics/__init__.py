"""Metrics of the benchmark (protocol §5), with a self-describing catalogue.

Each metric returns per-sample values; aggregation (mean, CI, count of valid
samples) is a separate step. Table headers and "best" markers should read the
direction from ``METRICS``.
"""

from dataclasses import dataclass

from metrics.clean_spectrogram import binarised_spectrogram, clean_spectrogram_bce
from metrics.curves import CURVE_FRACTIONS, curve_area, curve_columns, first_bins, rank_bins
from metrics.faithfulness import faithfulness_scores
from metrics.localisation import ideal_binary_mask, localisation_scores
from metrics.structure import complexity, mask_mean, sparseness, structure_scores


@dataclass(frozen=True)
class MetricInfo:
    """One metric's description.

    name: column name as in the paper's tables (and in per_sample.csv).
    higher_is_better: True (↑), False (↓) or None (no direction, MM).
    description: one line: definition and range (listed under every table).
    column: "paper" for the columns of the paper's tables; "added" for the columns this
        benchmark adds to them (deletion / insertion areas, localisation); "note" for a
        per-sample column reported in a note under the table (BCE-clean).
    """

    name: str
    higher_is_better: bool | None
    description: str
    column: str = "paper"


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
                   column="note"),
        MetricInfo("Ins-AUC", True, "insertion: p_c with only the k % of bins the map ranks first kept, mean over "
                                    "k ∈ [1, 50] % (trapezoid over k = 1, 2, 5, 10, 20, 50 %; ties in the map broken "
                                    "at random), in [0, 1]; with --curves",
                   column="added"),
        MetricInfo("Del-AUC", False, "deletion: the same with those bins removed, in [0, 1]; with --curves",
                   column="added"),
        MetricInfo("Loc-AUC", True, "AUROC of the map against the ideal binary mask (bins where the scaled clean "
                                    "clip's magnitude exceeds the contaminant's), 0.5 = chance, in [0, 1]",
                   column="added"),
        MetricInfo("Loc-mass", True, "share of the mask's mass on target-dominated bins, in [0, 1]",
                   column="added"),
    )
}
PAPER_COLUMNS = [m.name for m in METRICS.values() if m.column == "paper"]
"""The metric columns of the paper's tables, in order: AI AD AG FF Fid-In SPS COMP MM."""
TABLE_COLUMNS = [m.name for m in METRICS.values() if m.column in ("paper", "added")]
"""The columns of this benchmark's tables: the paper's, then Ins-AUC Del-AUC Loc-AUC Loc-mass."""


def arrow(name: str) -> str:
    """"↑", "↓" or "" (no direction) for metric ``name``; KeyError if unknown."""
    better = METRICS[name].higher_is_better
    return "" if better is None else ("↑" if better else "↓")


__all__ = [
    "MetricInfo", "METRICS", "PAPER_COLUMNS", "TABLE_COLUMNS", "arrow",
    "CURVE_FRACTIONS", "curve_area", "curve_columns", "first_bins", "rank_bins",
    "ideal_binary_mask", "localisation_scores",
    "binarised_spectrogram", "clean_spectrogram_bce", "faithfulness_scores",
    "sparseness", "complexity", "mask_mean", "structure_scores",
]
