"""Tables in the paper's layout, always rebuilt from ``per_sample.csv``.

Rows are grouped by domain (listenable, mel; the paper's block titles), one per method; columns
the paper's AI AD AG FF Fid-In SPS COMP MM, then Ins-AUC Del-AUC (with ``--curves``),
Loc-AUC Loc-mass (contaminated conditions), Max-Sens Avg-Sens RIS ROS (with ``--robustness``),
and n. Each cell is a mean over the evaluated samples with its 95 % bootstrap confidence interval
(``benchmark.statistics``); in each domain and column the best method and those not significantly
worse than it (paired, Holm-corrected Wilcoxon) are
marked. SPS and COMP are averaged over valid maps only; the count of invalid maps is reported.
Written as ``table.csv`` (means, ``<metric>_ci_low`` / ``_ci_high`` / ``_top`` columns),
``table.md`` (mean ± half-width, marked cells bold), ``table.tex`` (booktabs) and ``figure.png``.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.figures import plot_run
from benchmark.pipeline import TRUTH_FLOOR_DB
from benchmark.statistics import ALPHA, CONFIDENCE, RESAMPLES, bootstrap_interval, cell_seed, top_methods
from foundation.frontend import DOMAINS
from metrics import arrow, registered_metrics, table_columns


def shown_columns(per_sample: pd.DataFrame) -> list[str]:
    """The metric columns of ``metrics.table_columns()`` that ``per_sample`` holds with at least one value."""
    return [m for m in table_columns() if m in per_sample and per_sample[m].notna().any()]


def summarise(per_sample: pd.DataFrame, rows: list[tuple[str, str]], controls: set[str], seed: int) -> pd.DataFrame:
    """Mean, 95 % CI and significance mark of each metric per (domain, method), in the order of ``rows``.

    Args:
        per_sample: one row per sample × method × domain (columns ``sample_id``, ``domain``,
            ``method``, the metric columns).
        rows: (domain, method) pairs to report; a pair without samples (a method that cannot
            explain that domain) gets an empty row marked "n/a".
        controls: the control rows' labels, never chosen as the best of a column.
        seed: seed of the bootstrap (each cell's resampling is seeded from it and the cell's names).
    Returns:
        DataFrame with columns domain (the paper's block title), method, control, per shown metric m:
        m (mean), m_ci_low, m_ci_high, m_top (True: best or not significantly worse, False, or None
        for MM and empty rows); then n, invalid_maps, note.
    """
    columns = shown_columns(per_sample)
    marks = {}
    for domain in dict.fromkeys(d for d, _ in rows):
        in_domain = per_sample[per_sample["domain"] == domain]
        candidates = [m for d, m in rows if d == domain and m not in controls]
        for metric in columns:
            better = registered_metrics()[metric].higher_is_better
            if better is not None:
                values = in_domain.pivot(index="sample_id", columns="method", values=metric)
                marks[domain, metric] = top_methods(values, better, candidates)
    table = []
    for domain, method in rows:
        group = per_sample[(per_sample["domain"] == domain) & (per_sample["method"] == method)]
        row = {"domain": DOMAINS[domain].label, "method": method, "control": method in controls}
        for metric in columns:
            low, high = bootstrap_interval(group[metric].to_numpy(), cell_seed(seed, domain, method, metric))
            row.update({metric: group[metric].mean() if len(group) else None, f"{metric}_ci_low": low,
                        f"{metric}_ci_high": high, f"{metric}_top": marks.get((domain, metric), {}).get(method)})
        empty = group.empty
        row.update(n=len(group), invalid_maps=None if empty else int(group["SPS"].isna().sum()),
                   note="n/a: not defined in this domain" if empty else "")
        table.append(row)
    return pd.DataFrame(table)


def classifier_accuracy(per_sample: pd.DataFrame) -> float:
    """Accuracy in [0, 1] of the classifier on the labelled evaluated inputs (label ≥ 0); NaN if none."""
    samples = per_sample.drop_duplicates("sample_id")
    labelled = samples[samples["label"] >= 0]
    return float((labelled["label"] == labelled["predicted"]).mean()) if len(labelled) else float("nan")


def cell_text(row: dict, metric: str, latex: bool = False) -> str:
    """One cell of a summarised table's row: "mean ± CI half-width" (2 decimals, 3 for MM and the [0, 1]
    columns this benchmark adds), then "(σ s, seeds ± h)" where the row has ``<metric>_seed_sd`` (h: the
    half-width of the 95 % interval over the per-seed means); "n/a" without a
    mean. Not marked: ``<metric>_top`` says whether to."""
    if pd.isna(row[metric]):
        return "n/a"
    digits = registered_metrics()[metric].digits
    half_width = (row[f"{metric}_ci_high"] - row[f"{metric}_ci_low"]) / 2
    plus_minus, sigma = (" $\\pm$ ", "$\\sigma$") if latex else (" ± ", "σ")
    text = f"{row[metric]:.{digits}f}{plus_minus}{half_width:.{digits}f}"
    if pd.notna(row.get(f"{metric}_seed_sd")):
        seeds = (row[f"{metric}_seed_ci_high"] - row[f"{metric}_seed_ci_low"]) / 2
        text += f" ({sigma} {row[f'{metric}_seed_sd']:.{digits}f}, seeds{plus_minus}{seeds:.{digits}f})"
    return text


def is_marked(row: dict, metric: str) -> bool:
    """Whether the cell is marked (``<metric>_top`` true: best or not significantly worse); False
    for a missing mark (MM, empty rows), also as read back from table.csv."""
    mark = row.get(f"{metric}_top")
    return bool(pd.notna(mark) and mark)


def cell_texts(table: pd.DataFrame, latex: bool = False) -> pd.DataFrame:
    """The shown table: domain, method, ``cell_text`` per metric with marked cells in bold (Markdown
    ``**``, LaTeX ``\\textbf``), and n."""
    columns = [m for m in table_columns() if m in table]
    shown = table[["domain", "method"]].copy()
    for metric in columns:
        cells = []
        for row in table.to_dict("records"):
            text = cell_text(row, metric, latex)
            if is_marked(row, metric):
                text = f"\\textbf{{{text}}}" if latex else f"**{text}**"
            cells.append(text)
        header = f"{metric} {arrow(metric)}".strip()
        if latex:
            header = header.replace("↑", "$\\uparrow$").replace("↓", "$\\downarrow$")
        shown[header] = cells
    shown["n"] = table["n"].astype(str)
    if latex:
        for name in ("domain", "method"):
            shown[name] = [latex_escape(v) for v in shown[name]]
    return shown


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped (and → as $\\to$), for table.tex."""
    for plain, escaped in (("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
                           ("→", "$\\to$")):
        text = text.replace(plain, escaped)
    return text


def statistics_note(seed: int) -> str:
    """The line under every table that says what ± and bold mean."""
    return (f"± : half-width of the {100 * CONFIDENCE:.0f} % confidence interval of the mean over samples "
            f"(percentile bootstrap, {RESAMPLES} resamples, seed {seed}); bold: the best method of the column in its "
            f"domain (control rows excluded), and every row not significantly worse than it on the same samples "
            f"(one-sided Wilcoxon signed-rank, Pratt's zero handling, Holm-corrected over the column, α = {ALPHA})")


def write_tables(out_dir: Path, rows: list[tuple[str, str]], title: str, notes: list[str], controls: set[str],
                 seed: int) -> str:
    """Rebuild ``table.csv``, ``table.md``, ``table.tex`` and ``figure.png`` in ``out_dir`` from
    ``per_sample.csv``; return the Markdown.

    The title gets the classifier's accuracy on the evaluated inputs and their count.
    """
    per_sample = pd.read_csv(out_dir / "per_sample.csv")
    table = summarise(per_sample, rows, controls, seed)
    accuracy = classifier_accuracy(per_sample)
    shown = "n/a (unlabelled)" if pd.isna(accuracy) else f"{100 * accuracy:.1f} %"
    title = f"{title} — classifier accuracy {shown}, n = {per_sample['sample_id'].nunique()}"
    notes = [statistics_note(seed), *notes, *data_notes(per_sample, table)]
    write_table_files(out_dir, table, per_sample, title, notes)
    return (out_dir / "table.md").read_text()


def data_notes(per_sample: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """Notes read off the results: invalid maps, BCE-clean, the share of target-dominated bins, n/a rows."""
    notes = [f"{r.method} ({r.domain}): {int(r.invalid_maps)} invalid maps excluded from SPS/COMP"
             for r in table.itertuples() if pd.notna(r.invalid_maps) and r.invalid_maps > 0]
    if "BCE-clean" in per_sample:
        bce = per_sample[per_sample["domain"] == "listenable"].groupby("method", sort=False)["BCE-clean"].mean()
        if bce.notna().any():
            notes.append("mask vs binarised clean spectrogram (BCE ↓, L-MAC FT's guidance target), listenable: "
                         + ", ".join(f"{method} {value:.3f}" for method, value in bce.items()))
    if "Cue-prec" in shown_columns(per_sample):
        notes.append("Loc-AUC / Loc-mass / Cue-prec: against the planted cue's bins (its ideal binary mask: bins where "
                     "the cue's magnitude exceeds everything else's and lies within "
                     f"{TRUTH_FLOOR_DB:.0f} dB of its peak), which the classifier relies on (reliance checks above); "
                     "Distractor-mass: mass on the distractor's bins, samples with a distractor only; chance: Loc-AUC "
                     "0.5, Cue-prec and Loc-mass the cue's share of bins")
    elif "Loc-AUC" in shown_columns(per_sample):
        notes.append("Loc-AUC / Loc-mass: against the ideal binary mask of each sample (bins where the scaled clean "
                     "clip's magnitude exceeds the contaminant's); they measure whether a map points at the target "
                     "sound, not whether the classifier used it (a faithful map of a classifier that uses only part "
                     "of the target scores below 1); Loc-mass of a map spread evenly = the share of "
                     "target-dominated bins")
    if "Rob-changed" in per_sample and per_sample["Rob-changed"].notna().any():
        changed = per_sample.dropna(subset=["Rob-changed"]).groupby(["domain", "method"], sort=False)["Rob-changed"]
        notes.append("perturbed draws that changed the predicted class (counted in Max-Sens and Avg-Sens, excluded "
                     "from RIS and ROS; a sample all of whose draws changed has no RIS, ROS): " + ", ".join(
                         f"{method} ({domain}) {int(values.sum())} in {len(values)} samples"
                         for (domain, method), values in changed))
    not_defined = sorted({r.method for r in table.itertuples() if r.n == 0})
    if not_defined:
        notes.append(f"n/a: {', '.join(not_defined)} cannot explain that domain (L2I's masks live on the STFT grid "
                     "of the listenable domain; L-MAC FT's guidance binarises magnitudes, which waveform samples are "
                     "not)")
    return notes


def write_table_files(out_dir: Path, table: pd.DataFrame, per_sample: pd.DataFrame, title: str,
                      notes: list[str]) -> None:
    """Write ``table.csv``, ``table.md``, ``table.tex`` and ``figure.png`` of a summarised table."""
    table.to_csv(out_dir / "table.csv", index=False)
    body = cell_texts(table).to_markdown(index=False, disable_numparse=True)
    (out_dir / "table.md").write_text("\n".join([f"## {title}", "", body, "", *[f"- {n}" for n in notes], ""]))
    shown = cell_texts(table, latex=True)
    (out_dir / "table.tex").write_text(shown.to_latex(index=False, escape=False, caption=latex_escape(title),
                                                      column_format="ll" + "r" * (len(shown.columns) - 2)))
    plot_run(table, per_sample, title, out_dir / "figure.png")
