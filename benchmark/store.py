"""Where a run's results live, and how they are written so that none are ever lost.

``OUT`` holds the last finished results: ``per_sample.csv``, ``table.csv``,
``table.md``, ``table.tex``, ``figure.png``, ``run.json`` (and ``audio/`` with ``--save-audio``). A run writes into
``OUT/unfinished/`` and moves its files over the finished ones only when it has
finished (``RunStore.finish``): a run that fails or is interrupted, during training
or evaluation, leaves the earlier results byte-identical. ``--resume`` continues
``OUT/unfinished/`` (or, after a finished run, a copy of its rows) and computes only
the missing samples; rows of samples outside the run's sample set (another
``--limit``) are dropped.

In a launch of several processes (``torchrun``, ``benchmark.distributed``) each rank appends
to its own ``OUT/unfinished/per_sample.rank-<r>.csv``; a rank that dies loses only the batch
it was computing. When all have finished, rank 0 merges every row file of the folder into
``per_sample.csv`` in the order a single process writes (``RunStore.merge_rows``), so the
result does not depend on the number of processes, and resuming works with any number.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

RESULT_FILES = ("per_sample.csv", "table.csv", "table.md", "table.tex", "figure.png", "run.json")
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

    def start(self, record: dict, sample_count: int, save_audio: bool) -> None:
        """Prepare ``OUT/unfinished/`` (rank 0 only, before any rank writes).

        Without resume, an earlier unfinished run of this configuration is discarded
        (finished results stay until ``finish``). With resume, the unfinished rows (or
        a copy of the finished ones, and of their audio) are continued; rows whose
        ``sample_id`` is not below ``sample_count`` are dropped from every row file.
        """
        rows = self.work / "per_sample.csv"
        if not self.resume:
            shutil.rmtree(self.work, ignore_errors=True)
            if (self.out / "per_sample.csv").exists():
                print(f"the results in {self.out} will be replaced when this run finishes (pass --resume to "
                      "continue them instead)")
        elif not self.row_files() and (self.out / "per_sample.csv").exists():
            self.work.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.out / "per_sample.csv", rows)
            if save_audio and (self.out / "audio").is_dir():
                shutil.copytree(self.out / "audio", self.work / "audio", dirs_exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        for path in self.row_files():
            ResultWriter(path)  # truncates a row cut off by a kill
            if any(i >= sample_count for _, _, i in row_keys(path)):
                kept = pd.read_csv(path)
                kept[kept["sample_id"] < sample_count].to_csv(path, index=False)

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
        run's manifest), and move the unfinished results over the finished ones (the tables and the
        figure must already be in ``OUT/unfinished/``)."""
        names = [*RESULT_FILES, *(name for name in AGREEMENT_FILES if (self.work / name).exists())]
        record["files"] = {name: {"bytes": (self.work / name).stat().st_size, "sha256": sha256_of(self.work / name)}
                           for name in names if name != "run.json"}
        (self.work / "run.json").write_text(json.dumps(record, indent=1, default=str))
        if (self.work / "audio").is_dir():
            old = self.out / "audio.replaced"
            if (self.out / "audio").exists():
                os.replace(self.out / "audio", old)
            os.replace(self.work / "audio", self.out / "audio")
            shutil.rmtree(old, ignore_errors=True)
        for name in names:
            os.replace(self.work / name, self.out / name)
        shutil.rmtree(self.work)


class FolderLock:
    """An exclusive lock on a folder (``filelock``: an OS lock on ``<folder>/.lock``), held until
    ``release`` or the process's end; the OS frees it when the holder dies, so a lock left by a killed
    run is taken over. The holder's pid and start time are written to ``<folder>/.lock-holder.json``.

    Args:
        folder: the folder (created if missing).
        what: what the folder is, for the message, e.g. "--out".
        wait: False: raise at once when another process holds it; True: wait for it (printing who holds it).
    Raises:
        FileExistsError: ``wait`` is False and another process holds the lock (the message names its pid
            and start time).
    """

    def __init__(self, folder: Path, what: str, wait: bool = False):
        folder.mkdir(parents=True, exist_ok=True)
        self.holder_file = folder / ".lock-holder.json"
        self.lock = FileLock(str(folder / ".lock"))
        try:
            self.lock.acquire(timeout=0)
        except Timeout:
            holder = self._holder()
            if not wait:
                raise FileExistsError(f"{what} {folder} is in use by another run ({holder}); wait for it to finish, "
                                      f"or pass another {what}") from None
            print(f"waiting for {folder}, in use by another run ({holder})")
            self.lock.acquire()
        self.holder_file.write_text(json.dumps({"pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                "command": " ".join(sys.argv)}))

    def _holder(self) -> str:
        try:
            holder = json.loads(self.holder_file.read_text())
            return f"pid {holder['pid']}, started {holder['started']}"
        except (OSError, ValueError, KeyError):
            return "pid unknown"

    def release(self) -> None:
        """Free the lock and remove the holder's note (the empty ``.lock`` file stays: removing it could
        race with a run that is taking it)."""
        self.holder_file.unlink(missing_ok=True)
        self.lock.release()


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_then_replace(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name beside ``path`` (``.partial-<pid>-<name>``, same suffix, so
    that writers that go by the suffix pick the format), then move it over ``path`` (atomic): a failure
    leaves an earlier ``path`` as it was, and no partial file behind."""
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        write(partial)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
