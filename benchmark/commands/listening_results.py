"""Summary of the MUSHRA-style listening test (the L-MAC paper's user study, ICML 2024).

Listeners hear the input clip and, per method, its listenable interpretation, and rate each
condition from 0 to 100 with the input as the reference, for two questions (``QUESTIONS``).
The input itself is also presented as a condition, the hidden reference, labelled exactly
``"reference"``. The listening page writes one CSV per listener session, one row per rating,
with the columns ``COLUMNS``:

==========  ====  ===========================================================================
listener    str   the listener's name or id as typed on the page
sample_id   int   the evaluated sample
clip        str   the sample's audio clip
condition   str   a method label ("lmac", "lmac-ft guidance=16.0 cth=0.6", "l2i rth=0.2", …) or
                  exactly "reference" for the hidden reference
question    str   "correspondence" or "quality"
rating      int   0 … 100
==========  ====  ===========================================================================

A listener may appear in several files (several sessions); their ratings are pooled.

Post-screening follows ITU-R BS.1534-3 (MUSHRA), §4.1.2: a listener is excluded when they rate
the hidden reference below 90 for more than 15 % of the items they rated. Here an item is a
(sample, question) pair: the share is taken over all of that listener's hidden-reference
ratings, both questions together. A listener without any hidden-reference rating cannot be
screened and is excluded too.

``write_summary`` reads, screens and summarises, and writes ``listening.csv`` (the table),
``listening.md`` (the table as mean ± 95 % CI half-width, with notes) and ``listening.png``
(bar charts with error bars) into a folder, each to a temporary name first and then moved
into place, so a failure leaves earlier results as they were.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

from benchmark.arguments import check_writable_folder
from benchmark.output_folder import claim_folder
from foundation.files import write_then_replace

COLUMNS = ("listener", "sample_id", "clip", "condition", "question", "rating")
REFERENCE = "reference"
QUESTIONS = {  # the question ids, and the questions as the listening page shows them
    "correspondence": "How well does the explanation correspond to the part of the input audio associated with "
                      "the given class?",
    "quality": "How good is the audio quality of the explanation?",
}
REFERENCE_THRESHOLD = 90  # a hidden-reference rating below this counts against the listener
MAX_SHARE_BELOW = 0.15    # more than this share of such ratings excludes the listener
CONFIDENCE = 0.95


def _read_one(path: Path) -> pd.DataFrame:
    """One ratings CSV, checked and typed (see ``read_ratings``)."""
    if not path.is_file():
        raise ValueError(f"{path}: ratings file not found; check the path (one CSV per listener session)")
    try:
        # everything as text first, so that a listener "007" stays "007" and nothing becomes NaN silently
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty; export the session's ratings again or leave the file "
                         "out") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable CSV ({error}); export the session's ratings again") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; the file needs the columns {list(COLUMNS)} "
                         f"(found {list(frame.columns)})")
    if frame.empty:
        raise ValueError(f"{path}: the file has a header but no ratings; export the session's ratings "
                         "again or leave the file out")
    frame = frame[list(COLUMNS)].copy()
    for column in ("listener", "clip", "condition", "question"):
        blank = frame[column].str.strip() == ""
        if blank.any():
            raise ValueError(f"{path}: empty {column!r} on data row(s) {_rows(blank)}; fill it in or drop the row(s)")
    for column, low, high in (("sample_id", None, None), ("rating", 0, 100)):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = ~np.isfinite(values) | (values != values.round())
        if bad.any():
            raise ValueError(f"{path}: {column!r} must be whole numbers; non-numeric or fractional values "
                             f"{sorted(set(frame[column][bad]))[:5]} on data row(s) {_rows(bad)}; correct or drop them")
        if low is not None:
            outside = (values < low) | (values > high)
            if outside.any():
                raise ValueError(f"{path}: {column!r} must lie in {low} … {high}; values "
                                 f"{sorted(set(values[outside].astype(int)))[:5]} on data row(s) {_rows(outside)}; "
                                 "correct or drop them")
        frame[column] = values.astype(int)
    unknown = ~frame["question"].isin(list(QUESTIONS))
    if unknown.any():
        raise ValueError(f"{path}: unknown question value(s) {sorted(set(frame['question'][unknown]))} on data "
                         f"row(s) {_rows(unknown)}; use one of {list(QUESTIONS)}")
    frame["file"] = str(path)
    return frame


def _rows(mask: pd.Series) -> str:
    """1-based data-row numbers (header not counted) where ``mask`` is True, at most 5 shown."""
    rows = [int(i) + 1 for i in np.flatnonzero(mask.to_numpy())]
    return ", ".join(map(str, rows[:5])) + (f" … ({len(rows)} in all)" if len(rows) > 5 else "")


def read_ratings(paths: Iterable[str | Path] | str | Path) -> pd.DataFrame:
    """Read the ratings CSVs (one per listener session) and concatenate them.

    Args:
        paths: one path or several; the files follow the contract in the module docstring
            (columns ``COLUMNS`` in any order, extra columns ignored).

    Returns:
        One row per rating, columns ``COLUMNS`` plus ``file`` (the path read, as text);
        ``sample_id`` and ``rating`` (0 … 100) as int, the others as str.

    Raises:
        ValueError, naming the file and the fix: no paths given; a file missing, empty (no bytes
            or no data rows) or not a CSV; a column missing; an empty listener, clip, condition or
            question; a sample_id or rating that is not a whole number; a rating outside 0 … 100;
            a question other than "correspondence" or "quality"; the same listener rating the same
            sample, condition and question twice (within one file or across files), which would
            be counted twice.
    """
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise ValueError("no ratings files given; pass the CSVs the listening page wrote")
    ratings = pd.concat([_read_one(p) for p in paths], ignore_index=True)
    key = ["listener", "sample_id", "condition", "question"]
    repeated = ratings[ratings.duplicated(key, keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        files = sorted(set(repeated.loc[(repeated[key] == first[key]).all(axis=1), "file"]))
        raise ValueError(f"{', '.join(files)}: listener {first['listener']!r} rated sample {first['sample_id']}, "
                         f"condition {first['condition']!r}, question {first['question']!r} more than once "
                         f"({len(repeated)} such rows in all); keep one session's rating (drop the repeated "
                         "session's file or rows)")
    return ratings


def screen(ratings: pd.DataFrame, threshold: float = REFERENCE_THRESHOLD,
           max_share: float = MAX_SHARE_BELOW) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MUSHRA post-screening (ITU-R BS.1534-3, §4.1.2) on the hidden reference.

    A listener is excluded when more than ``max_share`` of their hidden-reference ratings
    (condition "reference"; all their (sample, question) pairs, both questions pooled) are below
    ``threshold``: ``share > max_share``, ``rating < threshold``. A listener who never rated the
    hidden reference cannot be screened and is excluded with share NaN.

    Args:
        ratings: as ``read_ratings`` returns (at least listener, condition, rating).
        threshold: rating scale 0 … 100; default 90.
        max_share: fraction 0 … 1; default 0.15.

    Returns:
        ``(kept, excluded)``: ``kept`` the ratings of the remaining listeners (same columns);
        ``excluded`` one row per excluded listener, columns ``listener``, ``reference_ratings``
        (count), ``below_threshold`` (count), ``share`` (fraction 0 … 1, NaN without reference
        ratings), ``reason`` (text), sorted by listener.
    """
    rows = []
    for listener, own in ratings.groupby("listener", sort=True):
        reference = own.loc[own["condition"] == REFERENCE, "rating"]
        below = int((reference < threshold).sum())
        share = below / len(reference) if len(reference) else math.nan
        if not len(reference):
            reason = "no hidden-reference rating, cannot be screened"
        elif share > max_share:
            reason = (f"rated the hidden reference below {threshold:g} on {below} of {len(reference)} "
                      f"(sample, question) pairs ({share:.0%} > {max_share:.0%})")
        else:
            continue
        rows.append({"listener": listener, "reference_ratings": len(reference), "below_threshold": below,
                     "share": share, "reason": reason})
    excluded = pd.DataFrame(rows, columns=["listener", "reference_ratings", "below_threshold", "share", "reason"])
    kept = ratings[~ratings["listener"].isin(excluded["listener"])].reset_index(drop=True)
    return kept, excluded


def summarise(ratings: pd.DataFrame) -> pd.DataFrame:
    """Mean rating and its 95 % confidence interval per question × condition.

    The interval is Student t over the individual ratings (the usual MUSHRA analysis, ITU-R
    BS.1534-3 §9.3): half-width = t_{0.975, n-1} · s / √n with s the sample standard deviation
    (ddof 1) and n the number of ratings; NaN when n = 1.

    Args:
        ratings: as ``read_ratings`` returns (after ``screen`` if wanted); must not be empty.

    Returns:
        One row per (question, condition), columns ``question``, ``condition``, ``mean``,
        ``ci95`` (half-width; both on the 0 … 100 rating scale), ``n_ratings``, ``n_listeners``.
        Questions in the order of ``QUESTIONS``; within a question the conditions sorted by
        label, the hidden reference last.

    Raises:
        ValueError: no ratings.
    """
    if ratings.empty:
        raise ValueError("no ratings to summarise")
    rows = []
    for question in [q for q in QUESTIONS if q in set(ratings["question"])]:
        asked = ratings[ratings["question"] == question]
        conditions = sorted(set(asked["condition"]) - {REFERENCE})
        conditions += [REFERENCE] if REFERENCE in set(asked["condition"]) else []
        for condition in conditions:
            own = asked[asked["condition"] == condition]
            values = own["rating"].to_numpy(dtype=float)
            n = len(values)
            half = (stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
                    if n > 1 else math.nan)
            rows.append({"question": question, "condition": condition, "mean": values.mean(), "ci95": half,
                         "n_ratings": n, "n_listeners": own["listener"].nunique()})
    return pd.DataFrame(rows, columns=["question", "condition", "mean", "ci95", "n_ratings", "n_listeners"])


def to_markdown(table: pd.DataFrame, notes: list[str]) -> str:
    """The summary table in Markdown: mean ± 95 % CI half-width (1 decimal), counts, notes below."""
    shown = pd.DataFrame({
        "question": table["question"],
        "condition": table["condition"],
        "rating (mean ± 95 % CI)": [f"{m:.1f} ± n/a" if pd.isna(h) else f"{m:.1f} ± {h:.1f}"
                                    for m, h in zip(table["mean"], table["ci95"])],
        "n ratings": table["n_ratings"].astype(str),
        "n listeners": table["n_listeners"].astype(str),
    })
    body = shown.to_markdown(index=False, disable_numparse=True)
    return "\n".join(["## Listening test (MUSHRA)", "", body, "", *[f"- {note}" for note in notes], ""])


def plot(table: pd.DataFrame) -> Figure:
    """One bar chart per question: mean rating per condition with 95 % CI error bars, y 0 … 100."""
    questions = list(dict.fromkeys(table["question"]))
    figure = Figure(figsize=(6 * len(questions), 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    for axes, question in zip(np.atleast_1d(figure.subplots(1, len(questions))), questions):
        rows = table[table["question"] == question]
        x = np.arange(len(rows))
        colours = ["grey" if c == REFERENCE else "tab:blue" for c in rows["condition"]]
        axes.bar(x, rows["mean"], yerr=rows["ci95"].fillna(0), capsize=4, color=colours)
        axes.set_xticks(x, rows["condition"], rotation=30, ha="right")
        axes.set_ylim(0, 100)
        axes.set_ylabel("rating (mean, 95 % CI)")
        axes.set_title(question)
        axes.grid(axis="y", alpha=0.3)
    figure.suptitle("Listening test: ratings per condition (hidden reference in grey)")
    return figure


def write_summary(paths: Iterable[str | Path] | str | Path, out: Path) -> str:
    """Read, screen and summarise the ratings; write the results into ``out``; return the Markdown.

    Writes ``out/listening.csv`` (``summarise``'s table), ``out/listening.md`` (the Markdown
    returned: the table as mean ± half-width and counts, notes on the screening rule, the excluded
    listeners and why, how many listeners remain, the questions' wording) and ``out/listening.png``
    (``plot``). Each is written to ``<name>.partial`` and moved into place with ``os.replace``;
    nothing is written when reading or screening fails.

    Args:
        paths: the ratings CSVs (``read_ratings``).
        out: the folder; created if missing.

    Raises:
        ValueError: bad input (``read_ratings``), or no listener left after the post-screening.
    """
    ratings = read_ratings(paths)
    kept, excluded = screen(ratings)
    listeners = ratings["listener"].nunique()
    if kept.empty:
        raise ValueError(f"no listener remains after the post-screening: all {listeners} were excluded by the "
                         f"rule of ITU-R BS.1534-3 (hidden reference rated below {REFERENCE_THRESHOLD} on more than "
                         f"{MAX_SHARE_BELOW:.0%} of their (sample, question) pairs, or never rated); "
                         f"{'; '.join(f'{r.listener}: {r.reason}' for r in excluded.itertuples())}")
    table = summarise(kept)
    notes = [
        (f"post-screening (ITU-R BS.1534-3): a listener is excluded who rates the hidden reference below "
         f"{REFERENCE_THRESHOLD} on more than {MAX_SHARE_BELOW:.0%} of the (sample, question) pairs they rated, "
         "both questions pooled"),
        *[f"excluded: {r.listener}: {r.reason}" for r in excluded.itertuples()],
        (f"{kept['listener'].nunique()} of {listeners} listeners remain "
         f"({len(excluded)} excluded), {len(kept)} ratings, {kept['sample_id'].nunique()} samples, "
         f"{len(set(ratings['file']))} files"),
        ("mean of the individual ratings (0 … 100); ± the 95 % confidence interval's half-width, Student t over "
         "the ratings (n/a with a single rating)"),
        *[f'{question}: "{wording}"' for question, wording in QUESTIONS.items()],
        "reference: the hidden reference (the input itself presented as a condition)",
    ]
    markdown = to_markdown(table, notes)
    out = Path(out)
    claim_folder(out, {"listening.csv", "listening.md", "listening.png"})
    write_then_replace(out / "listening.csv", lambda path: table.to_csv(path, index=False))
    write_then_replace(out / "listening.md", lambda path: path.write_text(markdown))
    write_then_replace(out / "listening.png", lambda path: plot(table).savefig(path, format="png", dpi=120))
    return markdown


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py listening-results``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py listening-results",
        description="Summarise the ratings CSVs saved by listening.html: per question and condition the mean, "
                    "its Student-t 95 % confidence interval and n, after the MUSHRA post-screening (listeners who "
                    "rate the hidden reference below 90 on more than 15 % of items are excluded). Writes "
                    "listening.csv, listening.md and listening.png to --out.")
    parser.add_argument("csv", nargs="+", help="ratings CSV files (one per listener session)")
    parser.add_argument("--out", default="results/runs/listening",
                        help="output folder (default results/runs/listening)")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py listening-results CSV...``: ``write_summary`` of the ratings."""
    check_writable_folder(args.out, "--out")
    return write_summary(args.csv, Path(args.out))
