"""Where a run's results live, and how they are written so that none are ever lost.

``OUT`` holds the last finished results: ``per_sample.csv``, ``table.csv``, ``table.md``, ``table.tex``,
``figure.png``, ``summary.json``, ``run.json`` (and ``audio/`` with ``--save-audio``). It is a run's own folder,
marked with the identity of the rows it holds (``benchmark.output_folder``, ``benchmark.run_identity``); a folder
that holds anything else is refused before anything is read. A run writes into ``OUT/unfinished/``
(marked with its own identity) and moves its files over the finished ones only when it has finished
(``RunStore.finish``): a run that fails or is interrupted, during training or evaluation, leaves the
earlier results byte-identical. ``--resume`` continues ``OUT/unfinished/`` (or, after a finished run, a
copy of its rows) only when it is the same run: the same settings, data and model weights; a larger
``--limit`` extends it. No run drops rows it does not compute again: a smaller ``--limit`` than the
rows in ``OUT`` is refused.

In a launch of several processes (``torchrun``, ``foundation.distributed``) each rank appends
to its own ``OUT/unfinished/per_sample.rank-<r>.csv``; a rank that dies loses only the batch
it was computing. When all have finished, rank 0 merges every row file of the folder into
``per_sample.csv`` in the order a single process writes (``RunStore.merge_rows``), so the
result does not depend on the number of processes, and resuming works with any number.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from benchmark.aggregation import RANKING_FILES, TRUST_FILE
from benchmark.output_folder import check_contents, read_mark, write_mark
from benchmark.run_identity import covers, differences
from foundation.files import sha256_of, write_then_replace

RESULT_FILES = ("per_sample.csv", "table.csv", "table.md", "table.tex", "figure.png", "summary.json", "run.json")
AGREEMENT_FILES = ("agreement.csv", "agreement.md", "agreement.png")
"""Written besides by a run on the controlled dataset (``benchmark.agreement``)."""


ROW_KEY = ["domain", "method", "sample_id"]
LINE_END = "\r\n"  # what ``csv.writer`` ends each row with


def row_keys(path: Path) -> set[tuple[str, str, int]]:
    """The (domain, method, sample_id) of every row of a per-sample CSV file (empty if none)."""
    if not path.exists() or not path.stat().st_size:
        return set()
    rows = pd.read_csv(path, usecols=ROW_KEY)
    return set(zip(rows["domain"], rows["method"], rows["sample_id"]))


class ResultWriter:
    """Appends per-sample rows to a CSV file and knows which are already there.

    A file cut off in the middle of a row (a run killed while writing) is truncated
    after its last complete row on opening. ``done_elsewhere``: keys of rows that other
    files hold (other ranks', an earlier run's): they count as done and are not written.
    """

    def __init__(self, path: Path, done_elsewhere: set[tuple[str, str, int]] = frozenset()):
        self.path = path
        self.done: set[tuple[str, str, int]] = set(done_elsewhere)
        self.columns: list[str] | None = None
        if path.exists():
            text = path.read_bytes()
            if text and not text.endswith(b"\n"):
                path.write_bytes(text[: text.rfind(b"\n") + 1])
        if path.exists() and path.stat().st_size:
            self.columns = list(pd.read_csv(path, nrows=0).columns)
            self.done |= row_keys(path)

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


RUN_ENTRIES = {*RESULT_FILES, *AGREEMENT_FILES, *RANKING_FILES, TRUST_FILE, "unfinished", "audio", "audio.replaced",
               "report"}
"""What a run folder may hold: the results, the trust table its ranking reads (placed by hand from a meta-evaluation,
docs/ranking.md), the unfinished run, WAVs (``--save-audio``) and the report."""
UNFINISHED_ENTRIES = {"per_sample*", *RESULT_FILES, *AGREEMENT_FILES, *RANKING_FILES, "audio"}
MARKED = {"unfinished", "audio", "audio.replaced"}
"""The folders a run replaces or deletes: each must carry a run's mark (``benchmark.output_folder``)."""


class RunStore:
    """The output folder of one run (see the module docstring), checked before anything is read.

    Args:
        out: the output folder (``--out``).
        settings: the settings part of the run's identity (``benchmark.run_identity.run_settings``).
        limit: ``--limit`` (None: every evaluation clip).
        resume: continue the unfinished (or the finished) rows of the same run.
    Raises:
        FileExistsError: ``out`` is not a run's own folder, holds other files, holds results or unfinished
            results of other settings, or of more evaluation clips than ``limit`` (which would drop their
            rows); nothing is touched, and the message names what differs and the fix.
    """

    def __init__(self, out: Path, settings: dict, limit: int | None, resume: bool):
        self.out, self.limit, self.resume = Path(out), limit, resume
        self.work = self.out / "unfinished"
        check_contents(self.out, RUN_ENTRIES, MARKED)
        check_contents(self.work, UNFINISHED_ENTRIES, {"audio"}, flag=f"--out {self.out}: the unfinished run in")
        self.finished = (read_mark(self.out) or {}).get("identity")
        self.unfinished = (read_mark(self.work) or {}).get("identity")
        new = {"settings": settings, "limit": limit}
        for identity, what, folder in ((self.finished, "results", self.out),
                                       (self.unfinished, "unfinished results", self.work)):
            if identity is None:
                continue
            differ = differences(identity, new, ("settings",))
            if differ:
                raise FileExistsError(f"{folder} holds {what} of another configuration: {'; '.join(differ)}; pass "
                                      f"the same options, another --out, or move {folder} away")
            earlier = identity.get("limit")
            if not covers(limit, earlier):
                fix = "leave --limit out" if earlier is None else f"pass --limit {earlier} or more"
                raise FileExistsError(f"--limit {limit}: {folder} holds {what} of {earlier or 'all'} evaluation clips, "
                                      f"and this run would drop the rows of the others; {fix}, or another --out")
        self.continued = None
        if resume:
            self.continued = self.unfinished if self.row_files() else self.finished

    def check_data(self, data: dict) -> None:
        """Before anything trains: with ``--resume``, the run continued must have read the same files (``data``,
        ``run_identity.data_identity``); without it, say what finished results this run will replace.

        Raises:
            ValueError: ``--resume`` of a run that read other audio or labels (the files are named).
        """
        if self.continued is not None:
            extends = self.continued.get("limit") != self.limit  # a larger --limit reads more clips
            differ = differences(self.continued, {"data": data}, ("data",), extends)
            if differ:
                raise ValueError(f"--resume: the run in {self.out} read other data: {'; '.join(differ)}; restore "
                                 "them, or run without --resume (all rows are computed anew), or into another --out")
        elif self.finished is not None:
            differ = differences(self.finished, {"data": data}, ("data",))
            print(f"the results in {self.out} will be replaced when this run finishes"
                  + (f" (they were computed from other data: {'; '.join(differ)})" if differ else "")
                  + " (pass --resume to continue them instead)")

    def expected_models(self) -> dict[str, str] | None:
        """With ``--resume``, the weights (file name → SHA-256) that the continued rows were computed with: the
        run must load the very same (``foundation.checkpoints.cached_training``); else None."""
        return None if self.continued is None else self.continued.get("models", {})

    def start(self, record: dict, identity: dict, save_audio: bool) -> None:
        """Prepare ``OUT/unfinished/`` (rank 0 only, before any rank writes), marked with ``identity``.

        Without resume, an earlier unfinished run (of these settings, covered by this run's samples) is
        discarded; finished results stay until ``finish``. With resume, the unfinished rows (or a copy of the
        finished ones, and of their audio) are continued.
        """
        if read_mark(self.out) is None:
            write_mark(self.out, {"identity": None})
        if not self.resume:
            if self.row_files():
                print(f"discarding the unfinished rows in {self.work} (pass --resume to continue them)")
            shutil.rmtree(self.work, ignore_errors=True)
        elif not self.row_files() and self.finished is not None:
            self.work.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.out / "per_sample.csv", self.work / "per_sample.csv")
            if save_audio and (self.out / "audio").is_dir():
                shutil.copytree(self.out / "audio", self.work / "audio", dirs_exist_ok=True)
        write_mark(self.work, {"identity": identity})
        if save_audio:
            write_mark(self.work / "audio", {})
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        for path in self.row_files():
            ResultWriter(path)  # truncates a row cut off by a kill

    def row_files(self) -> list[Path]:
        """``per_sample.csv`` and the ranks' ``per_sample.rank-<r>.csv`` in ``OUT/unfinished/``."""
        return sorted(self.work.glob("per_sample*.csv"))

    def writer(self, rank: int, world_size: int) -> ResultWriter:
        """The row writer of one process: ``per_sample.csv`` for a single process, else
        ``per_sample.rank-<rank>.csv``; rows of every other row file count as done."""
        path = self.work / ("per_sample.csv" if world_size == 1 else f"per_sample.rank-{rank}.csv")
        others = set().union(*(row_keys(p) for p in self.row_files() if p != path))
        return ResultWriter(path, others)

    def merge_rows(self, domains: list[str], methods: list[str], batch_size: int) -> None:
        """Merge every row file into ``per_sample.csv`` in the order one process writes it: domain,
        batch (``sample_id // batch_size``), method, sample (rank 0, after all ranks finished).
        Lines are moved as they are, ended with csv's \\r\\n (so a single process's file is unchanged,
        byte for byte); a row present twice is kept once."""
        header, lines = None, {}
        for path in self.row_files():
            text = path.read_bytes().decode().splitlines()  # \r\n from csv, \n from pandas (rows dropped)
            if not text:
                continue
            header = header or text[0]
            columns = next(csv.reader([header]))
            where = [columns.index(k) for k in ROW_KEY]
            for line in text[1:]:
                fields = next(csv.reader([line]))
                domain, method, sample_id = (fields[k] for k in where)
                lines.setdefault((domain, method, int(sample_id)), line)
        domain_order = {d: k for k, d in enumerate(domains)}
        method_order = {m: k for k, m in enumerate(methods)}
        order = sorted(lines, key=lambda key: (domain_order[key[0]], key[2] // batch_size, method_order[key[1]],
                                               key[2]))
        text = LINE_END.join([header, *(lines[key] for key in order)]) + LINE_END
        write_then_replace(self.work / "per_sample.csv", lambda path: path.write_bytes(text.encode()))
        for path in self.row_files():
            if path.name != "per_sample.csv":
                path.unlink()

    def finish(self, record: dict) -> None:
        """Write ``run.json``, with ``files`` listing the bytes and SHA-256 of every other result file (the
        run's manifest), move the unfinished results over the finished ones (the tables and the figure must
        already be in ``OUT/unfinished/``) and mark ``OUT`` with the identity of the rows it now holds."""
        names = [*RESULT_FILES, *(name for name in (*AGREEMENT_FILES, *RANKING_FILES) if (self.work / name).exists())]
        record["files"] = {name: {"bytes": (self.work / name).stat().st_size, "sha256": sha256_of(self.work / name)}
                           for name in names if name != "run.json"}
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        if (self.work / "audio").is_dir():
            old = self.out / "audio.replaced"
            shutil.rmtree(old, ignore_errors=True)  # a marked leftover of a finish that was killed
            if (self.out / "audio").exists():
                os.replace(self.out / "audio", old)
            os.replace(self.work / "audio", self.out / "audio")
            shutil.rmtree(old, ignore_errors=True)
        for name in names:
            os.replace(self.work / name, self.out / name)
        write_mark(self.out, {"identity": read_mark(self.work)["identity"]})
        shutil.rmtree(self.work)
