"""``run_benchmark.py leaderboard [--results results] [--out docs/leaderboard.md]``: the leaderboard page of the docs
site (docs/leaderboard.md), written from every run folder's ``summary.json`` (``benchmark.summary``).

Each summary is checked against the published schema and against its run (its table.csv and run.json) before
anything is written. The page keeps what stands above ``MARKER`` and below ``END`` in ``--out`` (the
hand-written text) and writes between them one section per dataset × classifier × condition, one table per domain:
a row per run × method, a column per metric grouped by category (faithfulness, complexity, localisation,
robustness; the metrics present decide which), cells "mean [95 % interval]" (bold: the best of the column in its
run, or not significantly worse), the aggregated rank of the run's ``ranking.csv`` where it has one ("of N": the
rows it ranks there), and n. The tables are HTML with ``data-value`` cells that
``docs/javascripts/sortable-tables.js`` sorts by a clicked header.
"""
from __future__ import annotations

import argparse
import html
from pathlib import Path

import pandas as pd

from benchmark.aggregation import CATEGORIES
from benchmark.arguments import UsageError
from benchmark.summary import SUMMARY, category, check_summary, write_summary
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from metrics import registered_metrics

MARKER = "<!-- Written by run_benchmark.py leaderboard from results/*/summary.json down to the next such line. -->"
END = "<!-- End of what run_benchmark.py leaderboard writes. -->"
ARROWS = {"higher": " ↑", "lower": " ↓", "none": ""}
RANKING = "ranking.csv"


def run_folders(results: Path) -> list[Path]:
    """The folders of ``results`` that hold a finished run's table (``table.csv``), by name."""
    return sorted(p for p in results.iterdir() if (p / "table.csv").is_file())


def backfill(results: Path) -> list[Path]:
    """Write ``summary.json`` into every run folder of ``results`` that has none (``benchmark.summary.write_summary``,
    from its table.csv and run.json); return the folders written."""
    written = [f for f in run_folders(results) if not (f / SUMMARY).exists()]
    for folder in written:
        write_summary(folder)
    return written


def aggregated_ranks(folder: Path) -> dict[tuple[str, str], dict]:
    """The "overall" rows of ``folder/ranking.csv`` by (domain, method), domain as a key of ``DOMAINS`` (the file
    may name it by key or by the tables' label); {} when the run has no ranking.csv.

    Raises:
        ValueError: a ranking.csv without the columns domain, method, category, mean_rank, rank_low, rank_high.
    """
    path = folder / RANKING
    if not path.is_file():
        return {}
    ranking = pd.read_csv(path)
    missing = {"domain", "method", "category", "mean_rank", "rank_low", "rank_high"} - set(ranking.columns)
    if missing:
        raise ValueError(f"{path}: no column {', '.join(sorted(missing))}; write it again with its command")
    keys = {**{d.label: k for k, d in DOMAINS.items()}, **{k: k for k in DOMAINS}}
    overall = ranking[ranking["category"] == "overall"]
    return {(keys.get(r["domain"], r["domain"]), r["method"]): r for r in overall.to_dict("records")}


def number(value: float | None, digits: int) -> str:
    return "n/a" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def metric_cell(row: dict | None) -> str:
    """A ``<td>``: the mean (bold where marked) over its interval "[low, high]", sorted by the mean; "—" without the
    metric, "n/a" without a mean."""
    if row is None or pd.isna(row["mean"]):
        return '<td data-value="">—</td>' if row is None else '<td data-value="">n/a</td>'
    metric = registered_metrics().get(row["metric"])
    digits = metric.digits if metric is not None else 3
    mean = number(row["mean"], digits)
    return (f'<td data-value="{float(row["mean"])!r}">' + (f"<strong>{mean}</strong>" if row["top"] is True else mean)
            + f"<br><small>[{number(row['ci_low'], digits)}, {number(row['ci_high'], digits)}]</small></td>")


def settings_text(settings: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if k != "method") or "defaults"


def domain_table(rows: pd.DataFrame, ranks: dict[str, dict]) -> str:
    """The HTML table of one section's domain: ``rows`` are its summary rows (columns as the summary's plus
    ``run``, the run folder's name); ``ranks`` maps a run's name to its ``aggregated_ranks``."""
    metrics = list(dict.fromkeys(rows["metric"]))
    groups = [(name, [m for m in metrics if category(m) == name]) for name in (*CATEGORIES, "other")]
    groups = [(name, members) for name, members in groups if members]
    directions = dict(zip(rows["metric"], rows["direction"]))
    domain = rows["domain"].iloc[0]
    with_rank = any(ranks.get(run) for run in rows["run"])
    top = ['<th rowspan="2" data-column="0">method</th>', '<th rowspan="2" data-column="1">run</th>']
    top += [f'<th colspan="{len(members)}">{name}</th>' for name, members in groups]
    bottom, column = [], 2
    for _, members in groups:
        for metric in members:
            bottom.append(f'<th data-column="{column}" data-better="{directions[metric]}">'
                          f"{html.escape(metric)}{ARROWS[directions[metric]]}</th>")
            column += 1
    if with_rank:
        top.append(f'<th rowspan="2" data-column="{column}" data-better="lower">rank ↓</th>')
        column += 1
    top.append(f'<th rowspan="2" data-column="{column}" data-better="higher">n</th>')
    ranked = {run: sum(key[0] == domain for key in ranks.get(run, {})) for run in set(rows["run"])}  # rows ranked
    body = []
    for (run, method), cells in rows.groupby(["run", "method"], sort=False):
        by_metric = {r["metric"]: r for r in cells.to_dict("records")}
        first = cells.iloc[0]
        label = html.escape(method) + (" <em>(control)</em>" if first["control"] else "")
        line = [f'<td data-value="{html.escape(method)}" title="{html.escape(settings_text(first["settings"]))}">'
                f"{label}</td>", f'<td data-value="{html.escape(run)}"><code>{html.escape(run)}</code></td>']
        line += [metric_cell(by_metric.get(m)) for _, members in groups for m in members]
        if with_rank:
            rank = ranks.get(run, {}).get((domain, method))
            line.append('<td data-value="">—</td>' if rank is None else
                        f'<td data-value="{float(rank["mean_rank"])!r}">{rank["mean_rank"]:.2f} <small>of {ranked[run]}'
                        f'</small><br><small>[{rank["rank_low"]:.2f}, {rank["rank_high"]:.2f}]</small></td>')
        line.append(f'<td data-value="{int(first["n"])}">{int(first["n"])}</td>')
        body.append("<tr>" + "".join(line) + "</tr>")
    return "\n".join(['<table data-sortable="true">', "<thead>", "<tr>" + "".join(top) + "</tr>",
                      "<tr>" + "".join(bottom) + "</tr>", "</thead>", "<tbody>", *body, "</tbody>", "</table>"])


def run_line(name: str, summary: dict) -> str:
    """One run of a section, in words: folder, config key, code, profile, samples, training seeds."""
    run = summary["run"]
    seeds = f", averaged over training seeds {', '.join(map(str, run['training_seeds']))}" \
        if run["training_seeds"] else ""
    n = max(r["n"] for r in summary["rows"])
    return (f"- `{name}`: config `{run['config_key']}`, code `{run['code']}`, profile {run['profile']}, "
            f"n = {n}{seeds}")


def generated_part(summaries: dict[str, dict], ranks: dict[str, dict], without: list[str]) -> str:
    """The page below ``MARKER``: a section per dataset × classifier × condition, a table per domain."""
    rows = pd.DataFrame([{**row, "run": name} for name, s in summaries.items() for row in s["rows"]])
    parts = [""]
    if rows.empty:
        parts.append("No run of `results/` has a summary.json yet.")
    order = {key: k for k, key in enumerate(DOMAINS)}
    for (dataset, classifier, condition), section in rows.groupby(["dataset", "classifier", "condition"]):
        parts += [f"## {dataset} · {classifier} · {condition}", ""]
        parts += [run_line(name, summaries[name]) for name in dict.fromkeys(section["run"])] + [""]
        for domain in sorted(set(section["domain"]), key=order.get):
            parts += [f"### {DOMAINS[domain].label}", "",
                      domain_table(section[section["domain"] == domain], ranks), ""]
    if without:
        parts += ["Run folders with a table.csv but no summary.json, not shown (`run_benchmark.py leaderboard "
                  "--backfill` writes them): " + ", ".join(f"`{name}`" for name in without) + ".", ""]
    return "\n".join(parts)


def leaderboard_page(results: Path, before: str, after: str) -> str:
    """The whole page: ``before``, ``MARKER``, the tables of every run folder of ``results`` with a summary.json,
    each checked first (``benchmark.summary.check_summary``), ``END`` and ``after``.

    Raises:
        ValueError: a summary that breaks the schema or does not match its run (one line naming the file and the
            field), or a ranking.csv without its columns.
    """
    folders = run_folders(results)
    summaries = {f.name: check_summary(f) for f in folders if (f / SUMMARY).exists()}
    ranks = {f.name: aggregated_ranks(f) for f in folders if f.name in summaries}
    without = [f.name for f in folders if f.name not in summaries]
    return "\n".join([before.rstrip("\n"), "", MARKER, generated_part(summaries, ranks, without), END, "",
                      after.lstrip("\n")])


def kept_text(out: Path) -> tuple[str, str]:
    """What stands above ``MARKER`` and below ``END`` in the page ``out``; a title alone when there is no page (or
    it lacks the marker lines)."""
    text = out.read_text() if out.is_file() else ""
    if MARKER not in text or END not in text:
        return "# Leaderboard\n", ""
    return text.split(MARKER)[0], text.split(END)[1]


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py leaderboard``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py leaderboard",
        description="Write the leaderboard page of the docs site from every run folder's summary.json: each is "
                    "checked against docs/leaderboard/summary.schema.json and against its run's table.csv and "
                    "run.json (config key, code version, methods, means, intervals, n), then one table per dataset "
                    "× classifier × condition × domain, metrics grouped by category, sortable in the browser.")
    parser.add_argument("--results", default="results",
                        help="the folder holding the run folders (default results)")
    parser.add_argument("--out", default="docs/leaderboard.md",
                        help="the page to write (default docs/leaderboard.md); what stands above and below the part "
                             "it writes (between its two marker lines) is kept")
    parser.add_argument("--backfill", action="store_true",
                        help="first write the summary.json of every run folder that has a table.csv but no summary "
                             "(runs that finished before runs wrote one), from its table.csv and run.json")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py leaderboard``: check every summary, write ``--out``, say what was written."""
    results, out = Path(args.results), Path(args.out)
    if not results.is_dir():
        raise UsageError(f"--results {args.results}: not a folder; pass the folder that holds the run folders "
                         "(default results)")
    if out.is_dir() or not out.parent.is_dir():
        raise UsageError(f"--out {args.out}: " + ("a folder" if out.is_dir() else f"{out.parent} does not exist")
                         + "; pass the path of the page to write, e.g. docs/leaderboard.md")
    written = backfill(results) if args.backfill else []
    page = leaderboard_page(results, *kept_text(out))
    write_then_replace(out, lambda path: path.write_text(page))
    shown = page.count("<table")
    return (f"wrote {out}: {shown} tables" + (f"; wrote the summaries of {', '.join(f.name for f in written)}"
                                              if written else ""))
