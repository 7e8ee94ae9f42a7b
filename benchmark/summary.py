"""``summary.json``: a run's table as machine-readable records, one per domain × method × metric, with the run's
provenance (docs/leaderboard.md, "summary.json").

Everything is derived from two files of the run folder, ``table.csv`` (``benchmark.tables``) and ``run.json``
(``benchmark.harness``; a seed-averaged folder: ``seeds.json`` and its seed runs' ``run.json``), so the same function
writes it at the end of every run and for runs that finished before summaries were written. A summary is checked
against the published JSON Schema (``docs/leaderboard/summary.schema.json``, with ``jsonschema``) and against its
run: it must equal what its ``table.csv`` and ``run.json`` give.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pandas as pd

from benchmark.aggregation import CATEGORIES
from benchmark.config import condition_name
from foundation.files import write_then_replace
from foundation.frontend import DOMAINS
from metrics import registered_metrics

SUMMARY = "summary.json"
SCHEMA_VERSION = 1
SCHEMA = Path(__file__).resolve().parents[1] / "docs" / "leaderboard" / "summary.schema.json"
DIRECTIONS = {True: "higher", False: "lower", None: "none"}


def category(metric: str) -> str:
    """The category of ``metric`` in the aggregated ranking's ``benchmark.aggregation.CATEGORIES`` (faithfulness,
    complexity, localisation, robustness; docs/ranking.md), else "other" (MM, which has no direction)."""
    return next((name for name, members in CATEGORIES.items() if metric in members), "other")


def run_records(folder: Path) -> tuple[list[dict], list[int] | None]:
    """The ``run.json`` records a run folder's table comes from, and its training seeds: a plain run's
    ``run.json`` (seeds None), or, for a seed-averaged folder (``seeds.json``), each seed run's, in seed order.

    Raises:
        ValueError: neither file is there or readable (the message names the folder and the fix).
    """
    try:
        if (folder / "seeds.json").is_file():
            seeds = json.loads((folder / "seeds.json").read_text())
            return [json.loads((folder / run / "run.json").read_text()) for run in seeds["runs"]], \
                seeds["training_seeds"]
        return [json.loads((folder / "run.json").read_text())], None
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{folder}: no readable run.json (or seeds.json and its seed runs' run.json): {error}; "
                         "pass the folder of a finished run") from None


def joined(values: list) -> str | None:
    """One value of a plain run as it is; the values of a seed-averaged folder's runs joined by "+" (None: none)."""
    return None if all(v is None for v in values) else "+".join(str(v) for v in values)


def value(cell) -> float | None:
    """A table cell as a JSON number, None where it is empty (NaN)."""
    return None if pd.isna(cell) else float(cell)


def build_summary(folder: Path) -> dict:
    """The summary of the run in ``folder``, from its ``table.csv`` and ``run.json`` (``run_records``).

    Returns:
        {"schema_version": 1, "run": {config_key, code, profile, seed, training_seeds, ad_softmax_twice},
        "rows": [one per table row with samples (n > 0) × registered metric column of the table]}; each row holds
        dataset, setting, contamination (None but for ood), condition, classifier, classifier_checkpoint, domain
        (key of ``foundation.frontend.DOMAINS``), method (the table's label), control, settings (run.json
        ``methods[label]``), metric, category, direction ("higher", "lower", "none"), mean, ci_low, ci_high (the
        95 % bootstrap interval), top (the significance mark), n, invalid_maps, (seed-averaged: seed_sd,
        seed_ci_low, seed_ci_high), code and config_key. Means are those of table.csv, bit for bit.
    Raises:
        ValueError: no table.csv, no run.json, a domain or method of the table that run.json does not know.
    """
    records, training_seeds = run_records(folder)
    try:
        table = pd.read_csv(folder / "table.csv")
    except (OSError, ValueError) as error:
        raise ValueError(f"{folder}: no readable table.csv ({error}); pass the folder of a finished run") from None
    config = records[0]["config"]
    methods = records[0].get("methods", {})
    labels = {d.label: key for key, d in DOMAINS.items()}
    contamination = config["contamination"] if config["setting"] == "ood" else None
    run = {"config_key": joined([r["config_key"] for r in records]),
           "code": joined([r["versions"]["code"] for r in records]), "profile": config["profile"],
           "seed": config["seed"], "training_seeds": training_seeds, "ad_softmax_twice": config["ad_softmax_twice"]}
    common = {"dataset": config["dataset"], "setting": config["setting"], "contamination": contamination,
              "condition": condition_name(SimpleNamespace(setting=config["setting"], contamination=contamination)),
              "classifier": records[0]["classifier"].get("name", config.get("classifier", "cnn14")),
              "classifier_checkpoint": joined([r["classifier"].get("checkpoint") for r in records])}
    metrics = [m for m in registered_metrics().values() if f"{m.name}_ci_low" in table]
    rows = []
    for cells in table.to_dict("records"):
        if cells["n"] == 0:
            continue  # "n/a": the method cannot explain that domain
        if cells["domain"] not in labels or cells["method"] not in methods:
            raise ValueError(f"{folder}: table.csv's row {cells['domain']} / {cells['method']} is not a domain or a "
                             "method of its run.json; the folder mixes two runs: run it again")
        for metric in metrics:
            name = metric.name
            top = cells.get(f"{name}_top")
            row = {**common, "domain": labels[cells["domain"]], "method": cells["method"],
                   "control": bool(cells["control"]), "settings": methods[cells["method"]], "metric": name,
                   "category": category(name), "direction": DIRECTIONS[metric.higher_is_better],
                   "mean": value(cells[name]), "ci_low": value(cells[f"{name}_ci_low"]),
                   "ci_high": value(cells[f"{name}_ci_high"]), "top": None if pd.isna(top) else bool(top),
                   "n": int(cells["n"]),
                   "invalid_maps": None if pd.isna(cells.get("invalid_maps")) else int(cells["invalid_maps"])}
            if f"{name}_seed_sd" in cells:
                row.update({key: value(cells[f"{name}_{key}"]) for key in ("seed_sd", "seed_ci_low", "seed_ci_high")})
            rows.append({**row, "code": run["code"], "config_key": run["config_key"]})
    return {"schema_version": SCHEMA_VERSION, "run": run, "rows": rows}


def write_summary(folder: Path) -> Path:
    """Write ``folder/summary.json`` (``build_summary``, checked against the schema) and return its path."""
    summary = build_summary(Path(folder))
    path = Path(folder) / SUMMARY
    validate(summary, path)
    rows = ",\n  ".join(json.dumps(row, ensure_ascii=False) for row in summary["rows"])  # one row a line
    text = (f'{{"schema_version": {summary["schema_version"]},\n "run": {json.dumps(summary["run"])},\n'
            f' "rows": [\n  {rows}\n ]\n}}\n')
    write_then_replace(path, lambda partial: partial.write_text(text))
    return path


def validate(summary: dict, path: Path) -> None:
    """Check ``summary`` against ``SCHEMA``.

    Raises:
        ValueError: one line naming ``path``, the field (e.g. ``rows[3].mean``) and what is wrong with it.
    """
    schema = json.loads(SCHEMA.read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(summary))
    if error is not None:
        raise ValueError(f"{path}: {field_name(error.absolute_path)}: {error.message} (the schema: {SCHEMA.name})")


def field_name(parts) -> str:
    """``["rows", 3, "mean"]`` → ``rows[3].mean``; the top level is "summary"."""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts).lstrip(".")
    return text or "summary"


def check_summary(folder: Path) -> dict:
    """Read ``folder/summary.json``, check it against the schema and against the run it summarises (it must hold
    what ``build_summary`` derives from the folder's table.csv and run.json: config key, code version, the methods,
    means, intervals and n of the table) and return it.

    Raises:
        ValueError: one line naming the file and the first field that is wrong, and the fix.
    """
    path = Path(folder) / SUMMARY
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not readable JSON ({error}); delete it and write it again with run_benchmark.py "
                         "leaderboard --backfill") from None
    validate(summary, path)
    expected = build_summary(Path(folder))
    fix = f"it does not match {Path(folder).name}'s table.csv and run.json; delete it and write it again with " \
          "run_benchmark.py leaderboard --backfill"
    for key, want in expected["run"].items():
        if summary["run"][key] != want:
            raise ValueError(f"{path}: run.{key} {summary['run'][key]!r} is not {want!r}: {fix}")
    known, have = {(r["domain"], r["method"], r["metric"]) for r in expected["rows"]}, {}
    for index, row in enumerate(summary["rows"]):
        key = (row["domain"], row["method"], row["metric"])
        if key in have or key not in known:
            where = "twice in the summary" if key in have else "not in table.csv"
            raise ValueError(f"{path}: rows[{index}]: {' / '.join(key)} is {where}: {fix}")
        have[key] = index, row
    for want in expected["rows"]:
        key = (want["domain"], want["method"], want["metric"])
        if key not in have:
            raise ValueError(f"{path}: rows: {' / '.join(key)} of table.csv is missing: {fix}")
        index, row = have[key]
        for field, target in want.items():
            if not same(row.get(field), target):
                raise ValueError(f"{path}: rows[{index}].{field} {row.get(field)!r} is not {target!r}, what table.csv "
                                 f"and run.json give for {' / '.join(key)}: {fix}")
    return summary


def same(a, b) -> bool:
    """Equal, numbers within 1e-12 relative (a JSON round trip keeps them exactly; this only forgives a writer
    that prints fewer digits)."""
    numbers = all(isinstance(v, float | int) and not isinstance(v, bool) for v in (a, b))
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0) if numbers else a == b
