"""MkDocs hooks of the documentation site (``mkdocs.yml``): the figures of ``results/`` join the site,
and the command-line reference is written from the parser, so that it cannot drift from ``--help``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmark.options import COMMANDS, build_parser  # noqa: E402  (the repository root is on the path now)
from metrics import arrow, registered_metrics  # noqa: E402

PLACEHOLDER = "<!-- the command-line reference is generated here from benchmark.options -->"
METRICS_PLACEHOLDER = "<!-- the metric catalogue is generated here from the registered metrics -->"
WHERE = {"paper": "the paper's tables", "added": "added columns", "note": "a note under the table",
         "per-sample": "per_sample.csv only"}


def metric_catalogue() -> str:
    """Markdown table of every registered metric: name, direction, definition and range, source, where."""
    rows = ["| metric | better | definition and range | source | reported in |", "|---|---|---|---|---|"]
    for metric in registered_metrics().values():
        cells = [f"`{metric.name}`", arrow(metric.name) or "—", metric.description.replace("|", "\\|"),
                 metric.source, WHERE[metric.column] + (" (with --curves)" if metric.needs_curves else "")
                 + (" (with --robustness)" if metric.needs_robustness else "")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def command_line_reference() -> str:
    """Markdown of ``--help`` of ``run_benchmark.py`` and each of its commands, as the parser prints it."""
    sections = []
    for command in ("run", *COMMANDS):
        parser = build_parser(command)
        parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        title = "run_benchmark.py" if command == "run" else f"run_benchmark.py {command}"
        sections.append(f"## `{title}`\n\n```text\n{parser.format_help()}```\n")
    return "\n".join(sections)


def on_files(files, config):
    """Add every figure of ``results/`` to the site under ``results/``, where the pages link to them."""
    for figure in sorted((ROOT / "results").rglob("*.png")):
        files.append(File(str(figure.relative_to(ROOT)), str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files


def on_page_markdown(markdown, page, config, files):
    """Fill the command-line reference page and the metric catalogue."""
    if PLACEHOLDER in markdown:
        markdown = markdown.replace(PLACEHOLDER, command_line_reference())
    if METRICS_PLACEHOLDER in markdown:
        markdown = markdown.replace(METRICS_PLACEHOLDER, metric_catalogue())
    return markdown
