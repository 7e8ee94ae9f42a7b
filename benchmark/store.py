"""Where a run's results live, and how they are written so that none are ever lost.

``OUT`` holds the last finished results: ``per_sample.csv``, ``table.csv``,
``table.md``, ``table.tex``, ``figure.png``, ``run.json`` (and ``audio/`` with ``--save-audio``). A run writes into
``OUT/unfinished/`` and moves its files over the finished ones only when it has
finished (``RunStore.finish``): a run that fails or is interrupted, during training
or evaluation, leaves the earlier results byte-identical. ``--resume`` continues
``OUT/unfinished/`` (or, after a finished run, a copy of its rows) and computes only
the missing samples; rows of samples outside the run's sample set (another
``--limit``) are dropped.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd

RESULT_FILES = ("per_sample.csv", "table.csv", "table.md", "table.tex", "figure.png", "run.json")


class ResultWriter:
    """Appends per-sample rows to a CSV file and knows which are already there.

    A file cut off in the middle of a row (a run killed while writing) is truncated
    after its last complete row on opening.
    """

    def __init__(self, path: Path):
        self.path = path
        self.done: set[tuple[str, str, int]] = set()
        self.columns: list[str] | None = None
        if path.exists():
            text = path.read_bytes()
            if text and not text.endswith(b"\n"):
                path.write_bytes(text[: text.rfind(b"\n") + 1])
        if path.exists() and path.stat().st_size:
            existing = pd.read_csv(path)
            self.columns = list(existing.columns)
            self.done = set(zip(existing["domain"], existing["method"], existing["sample_id"]))

    def missing(self, domain: str, method: str, sample_ids: list[int]) -> bool:
        return any((domain, method, i) not in self.done for i in sample_ids)

    def write(self, rows: list[dict]) -> None:
        """Append the rows not yet on disk (a batch interrupted half-way is completed, not duplicated).

        Raises:
            ValueError: the rows have other columns than the file.
        """
        rows = [r for r in rows if (r["domain"], r["method"], r["sample_id"]) not in self.done]
        if not rows:
            return
        new_file = self.columns is None
        self.columns = self.columns or list(rows[0])
        if any(list(r) != self.columns for r in rows):
            raise ValueError(f"per-sample rows with columns other than {self.path}'s")
        with self.path.open("a", newline="") as file:
            writer = csv.writer(file)
            if new_file:
                writer.writerow(self.columns)
            writer.writerows([["" if v is None else v for v in r.values()] for r in rows])
        self.done.update((r["domain"], r["method"], r["sample_id"]) for r in rows)


class RunStore:
    """The output folder of one run configuration (see the module docstring).

    Args:
        out: the output folder (``--out``).
        identity: ``config_key`` of the settings that define the results.
        resume: continue unfinished (or finished) results of the same configuration.
    Raises:
        FileExistsError: ``out`` holds finished or unfinished results of another
            configuration (nothing is touched; the message names the fix).
    """

    def __init__(self, out: Path, identity: str, resume: bool):
        self.out, self.identity, self.resume = Path(out), identity, resume
        self.work = self.out / "unfinished"
        for folder, what in ((self.out, "results"), (self.work, "unfinished results")):
            if (folder / "per_sample.csv").exists() and self._identity_in(folder) != identity:
                raise FileExistsError(f"{folder} holds {what} of another configuration; pass another --out, or move "
                                      f"{folder / 'per_sample.csv'} away")

    @staticmethod
    def _identity_in(folder: Path) -> str | None:
        try:
            return json.loads((folder / "run.json").read_text()).get("config_key")
        except (OSError, ValueError):
            return None

    def start(self, record: dict, sample_count: int, save_audio: bool) -> ResultWriter:
        """Prepare ``OUT/unfinished/`` and return the writer of its ``per_sample.csv``.

        Without resume, an earlier unfinished run of this configuration is discarded
        (finished results stay until ``finish``). With resume, the unfinished rows (or
        a copy of the finished ones, and of their audio) are continued; rows whose
        ``sample_id`` is not below ``sample_count`` are dropped.
        """
        rows = self.work / "per_sample.csv"
        if not self.resume:
            shutil.rmtree(self.work, ignore_errors=True)
            if (self.out / "per_sample.csv").exists():
                print(f"the results in {self.out} will be replaced when this run finishes (pass --resume to "
                      "continue them instead)")
        elif not rows.exists() and (self.out / "per_sample.csv").exists():
            self.work.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.out / "per_sample.csv", rows)
            if save_audio and (self.out / "audio").is_dir():
                shutil.copytree(self.out / "audio", self.work / "audio", dirs_exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        writer = ResultWriter(rows)
        if writer.done and any(i >= sample_count for _, _, i in writer.done):
            kept = pd.read_csv(rows)
            kept[kept["sample_id"] < sample_count].to_csv(rows, index=False)
            writer = ResultWriter(rows)
        return writer

    def finish(self, record: dict) -> None:
        """Write ``run.json`` and move the unfinished results over the finished ones
        (the tables and the figure must already be in ``OUT/unfinished/``)."""
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        if (self.work / "audio").is_dir():
            old = self.out / "audio.replaced"
            if (self.out / "audio").exists():
                os.replace(self.out / "audio", old)
            os.replace(self.work / "audio", self.out / "audio")
            shutil.rmtree(old, ignore_errors=True)
        for name in RESULT_FILES:
            os.replace(self.work / name, self.out / name)
        shutil.rmtree(self.work)


def write_then_replace(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name beside ``path`` (``.partial-<name>``, same suffix, so that
    writers that go by the suffix pick the format), then move it over ``path``: a failure leaves an
    earlier ``path`` as it was, and no partial file behind."""
    partial = path.with_name(f".partial-{path.name}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
