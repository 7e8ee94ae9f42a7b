"""Whether two runs' per-sample rows agree within the rounding of another machine.

With the shipped reference models (``foundation.checkpoints.REFERENCE_MODELS``), the main job on any
x86-64 CPU must give the committed rows: the same predicted class on every row, every continuous
column within ``TOLERANCE`` · max(1, |value|) (absolute on the probability scale, relative for the
columns of larger magnitude: AD and AG in percent, COMP in nats), and a binary metric (AI, Fid-In)
different only on a row whose margin (``AI-margin``, ``Fid-In-margin``: the difference of the two
probabilities it compares) is within ``TOLERANCE``.
What makes this hold: every pass on a CPU runs one sample at a time (no batch-size dependence),
random draws are seeded per sample, the metrics are computed in float64, and the rest is float32
rounding of the same weights, which moves probabilities by about 1e-6.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

TOLERANCE = 1e-4
"""Largest difference allowed between two machines: absolute up to magnitude 1, relative above."""
BINARY_COLUMNS = {"AI": "AI-margin", "Fid-In": "Fid-In-margin"}
KEY = ["domain", "method", "sample_id"]


def compare_per_sample(expected: pd.DataFrame, got: pd.DataFrame, tolerance: float = TOLERANCE) -> dict:
    """Compare the rows of ``got`` with the same (domain, method, sample_id) rows of ``expected``.

    Args:
        expected, got: per_sample.csv frames; ``got`` may hold a subset of ``expected``'s rows.
    Returns:
        {"rows": rows compared, "missing": keys of ``got`` absent from ``expected``,
        "predicted_differs": rows whose predicted class differs, "largest": {column: largest |Δ|}
        over the continuous columns (a NaN against a number counts as infinite), "beyond_tolerance":
        {column: rows beyond the tolerance},
        "binary_flips": {column: flips on rows whose margin exceeds the tolerance}}.
    """
    merged = got.merge(expected, on=KEY, how="left", suffixes=("", "_expected"), indicator=True)
    missing = int((merged["_merge"] == "left_only").sum())
    merged = merged[merged["_merge"] == "both"]
    numeric = [c for c in got.columns if c not in KEY and c + "_expected" in merged
               and pd.api.types.is_float_dtype(got[c]) and c not in BINARY_COLUMNS]
    largest, beyond = {}, {}
    for column in numeric:
        a, b = merged[column].to_numpy(float), merged[column + "_expected"].to_numpy(float)
        both_nan = np.isnan(a) & np.isnan(b)
        difference = np.where(both_nan, 0.0, np.abs(a - b))
        scale = tolerance * np.maximum(1.0, np.abs(np.nan_to_num(b)))
        largest[column] = float(np.nanmax(np.where(np.isnan(difference), np.inf, difference), initial=0.0))
        beyond[column] = int((~(difference <= scale)).sum())
    flips = {}
    for column, margin in BINARY_COLUMNS.items():
        if column in merged and margin in merged:
            changed = merged[column] != merged[column + "_expected"]
            clear = (merged[margin].abs() > tolerance) & (merged[margin + "_expected"].abs() > tolerance)
            flips[column] = int((changed & clear).sum())
    return {"rows": int(len(merged)), "missing": missing,
            "predicted_differs": int((merged["predicted"] != merged["predicted_expected"]).sum()),
            "largest": largest, "beyond_tolerance": beyond, "binary_flips": flips}


def agrees(report: dict) -> bool:
    """True when ``compare_per_sample``'s report finds nothing beyond the tolerance."""
    return (report["rows"] > 0 and not report["missing"] and not report["predicted_differs"]
            and not any(report["beyond_tolerance"].values()) and not any(report["binary_flips"].values()))
