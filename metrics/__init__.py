"""Metrics of the benchmark (protocol §5): each one a registered unit (``metrics.base.Metric``) with its
per-sample computation, name, direction, range, description and source.

Importing this package registers the built-in metrics, in the order of the columns: the paper's
(AI, AD, AG, FF, Fid-In, SPS, COMP, MM), the per-sample margins of AI and Fid-In, BCE-clean, with
``--curves`` the deletion and insertion curves, then the localisation columns, with ``--robustness`` the
robustness columns (Max-Sens, Avg-Sens, RIS, ROS). A metric of your own:
a module that calls ``register_metric``, imported here or with ``--import``.
"""
from metrics import faithfulness, structure, clean_spectrogram, curves, localisation, robustness  # noqa: F401,I001  (registration, in column order)
from metrics.base import (Metric, MetricInputs, arrow, paper_columns, register_metric, registered_metrics,
                          reported_metrics, table_columns)
from metrics.clean_spectrogram import binarised_spectrogram, clean_spectrogram_bce
from metrics.curves import CURVE_FRACTIONS, curve_area, curve_columns, first_bins, rank_bins
from metrics.faithfulness import binary_margins, faithfulness_scores
from metrics.localisation import (distractor_mass, ideal_binary_mask, localisation_auc, localisation_mass,
                                  precision_at_truth_size)
from metrics.robustness import (RobustnessDraws, draw_values, perturb_features, perturb_rows,
                                relative_input_stability, relative_output_stability, sensitivity)
from metrics.structure import complexity, mask_mean, sparseness

__all__ = [
    "Metric", "MetricInputs", "arrow", "paper_columns", "register_metric", "registered_metrics", "reported_metrics",
    "table_columns", "CURVE_FRACTIONS", "curve_area", "curve_columns", "first_bins", "rank_bins",
    "ideal_binary_mask", "localisation_auc", "localisation_mass", "precision_at_truth_size", "distractor_mass",
    "binarised_spectrogram", "clean_spectrogram_bce",
    "binary_margins", "faithfulness_scores", "sparseness", "complexity", "mask_mean",
    "RobustnessDraws", "draw_values", "perturb_features", "perturb_rows", "relative_input_stability",
    "relative_output_stability", "sensitivity",
]
