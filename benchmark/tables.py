"""Tables in the paper's layout, always rebuilt from ``per_sample.csv`` (DESIGN.md).

Rows are grouped by domain (listenable, mel; the paper's block titles), one per method; columns
AI AD AG FF Fid-In SPS COMP MM n, means over the evaluated samples. SPS and COMP
are averaged over valid maps only; the count of invalid maps is reported.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.frontend import DOMAINS
from metrics import PAPER_COLUMNS, arrow


def summarise(per_sample: pd.DataFrame, rows: list[tuple[str, str]]) -> pd.DataFrame:
    """Mean of each metric per (domain, method), in the order of ``rows``.

    Args:
        per_sample: one row per sample × method × domain (columns ``domain``,
            ``method``, the metric columns, ``label``, ``predicted``).
        rows: (domain, method) pairs to report; a pair without samples (a method
            that cannot explain that domain) gets an empty row marked "n/a".
    Returns:
        DataFrame with columns domain (the paper's block title), method, the metrics, n, invalid_maps.
    """
    table = []
    for domain, method in rows:
        group = per_sample[(per_sample["domain"] == domain) & (per_sample["method"] == method)]
        row = {"domain": DOMAINS[domain].label, "method": method}
        if group.empty:
            row.update({m: None for m in PAPER_COLUMNS}, n=0, invalid_maps=None, note="n/a: not defined in this domain")
        else:
            row.update({m: group[m].mean() for m in PAPER_COLUMNS})
            row.update(n=len(group), invalid_maps=int(group["SPS"].isna().sum()), note="")
        table.append(row)
    return pd.DataFrame(table)


def classifier_accuracy(per_sample: pd.DataFrame) -> float:
    """Accuracy in [0, 1] of the classifier on the labelled evaluated inputs (label ≥ 0); NaN if none."""
    samples = per_sample.drop_duplicates("sample_id")
    labelled = samples[samples["label"] >= 0]
    return float((labelled["label"] == labelled["predicted"]).mean()) if len(labelled) else float("nan")


def to_markdown(table: pd.DataFrame, title: str, notes: list[str]) -> str:
    """The table in Markdown: arrows in the header, 2 decimals (3 for MM), notes below."""
    header = {m: f"{m} {arrow(m)}".strip() for m in PAPER_COLUMNS}
    shown = table.drop(columns=["invalid_maps", "note"]).rename(columns=header)
    for m in PAPER_COLUMNS:
        digits = 3 if m == "MM" else 2
        shown[header[m]] = [("n/a" if pd.isna(v) else f"{v:.{digits}f}") for v in table[m]]
    body = shown.to_markdown(index=False, disable_numparse=True)
    return "\n".join([f"## {title}", "", body, "", *[f"- {note}" for note in notes], ""])


def write_tables(out_dir: Path, rows: list[tuple[str, str]], title: str, notes: list[str]) -> str:
    """Rebuild ``table.csv`` and ``table.md`` in ``out_dir`` from ``per_sample.csv``; return the Markdown.

    The Markdown title gets the classifier's accuracy on the evaluated inputs and their count.
    """
    per_sample = pd.read_csv(out_dir / "per_sample.csv")
    table = summarise(per_sample, rows)
    accuracy = classifier_accuracy(per_sample)
    invalid = [f"{r.method} ({r.domain}): {int(r.invalid_maps)} invalid maps excluded from SPS/COMP"
               for r in table.itertuples() if pd.notna(r.invalid_maps) and r.invalid_maps > 0]
    if "BCE-clean" in per_sample:
        bce = per_sample[per_sample["domain"] == "listenable"].groupby("method", sort=False)["BCE-clean"].mean()
        invalid.append("mask vs binarised clean spectrogram (BCE ↓, L-MAC FT's guidance target), listenable: "
                       + ", ".join(f"{method} {value:.3f}" for method, value in bce.items()))
    not_defined = sorted({r.method for r in table.itertuples() if r.n == 0})
    if not_defined:
        invalid.append(f"n/a: {', '.join(not_defined)} cannot explain that domain (their masks live on the "
                       "STFT grid of the listenable domain)")
    shown = "n/a (unlabelled)" if pd.isna(accuracy) else f"{100 * accuracy:.1f} %"
    title = f"{title} — classifier accuracy {shown}, n = {per_sample['sample_id'].nunique()}"
    table.to_csv(out_dir / "table.csv", index=False)
    markdown = to_markdown(table, title, [*notes, *invalid])
    (out_dir / "table.md").write_text(markdown)
    return markdown
