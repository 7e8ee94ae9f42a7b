"""Where a run may write, and which folders are a run's own (docs/running.md, "The output folder").

A run writes only inside folders it created and marked as its own: each holds ``MARK``
(``.benchmark-run.json``), and the run replaces or deletes only what carries that mark. ``--out`` may
not be ``/``, nor be, contain or lie inside the data, the checkpoint cache or the repository's committed
``results/`` folders (``check_location``); an existing folder is taken only when it is empty or a run's
own, holding nothing but what runs write there (``check_contents``).
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from foundation.files import write_then_replace

MARK = ".benchmark-run.json"
"""The mark of a folder that a run made: JSON, ``{"identity": ...}`` for a run folder (the identity of the rows
it holds, ``benchmark.run_identity``; None before any finished), ``{}`` for a run's ``audio/``."""

LOCK_FILES = (".lock", ".lock-holder.json")
REPOSITORY = Path(__file__).resolve().parents[1]


def committed_results() -> list[Path]:
    """The repository's committed result folders: every folder of ``results/`` but ``results/runs/`` (where
    runs write by default, not tracked)."""
    folder = REPOSITORY / "results"
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "runs") if folder.is_dir() else []


def check_location(out: str | Path, protected: list[tuple[str, Path]], flag: str = "--out") -> None:
    """Refuse an output folder that is the file system's root, or is, contains or lies inside a protected folder.

    Args:
        out: the output folder as given (resolved here: ``..`` and links do not hide a protected folder).
        protected: (what, folder) pairs, e.g. ("the data root (--data-root)", Path(...)); missing folders are
            compared by their resolved path too.
    Raises:
        ValueError: the message names ``flag``, the protected folder and the fix.
    """
    resolved = Path(out).expanduser().resolve()
    if resolved == Path(resolved.anchor):
        raise ValueError(f"{flag} {out}: the root of the file system; pass a folder of its own, e.g. results/runs/NAME")
    for what, folder in protected:
        folder = Path(folder).expanduser().resolve()
        relation = ("is" if resolved == folder else "contains" if resolved in folder.parents
                    else "lies inside" if folder in resolved.parents else None)
        if relation:
            raise ValueError(f"{flag} {out}: {relation} {what} {folder}; a run writes its results into a folder "
                             "of its own: pass another folder, e.g. results/runs/NAME")


def read_mark(folder: Path) -> dict | None:
    """The mark of ``folder`` (``MARK``), or None when the folder does not carry one (or it is unreadable)."""
    try:
        mark = json.loads((Path(folder) / MARK).read_text())
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) else None


def write_mark(folder: Path, mark: dict) -> None:
    """Create ``folder`` if missing and mark it as a run's own with ``mark`` (JSON), replacing an earlier mark."""
    folder.mkdir(parents=True, exist_ok=True)
    write_then_replace(folder / MARK, lambda path: path.write_text(json.dumps(mark, indent=1, default=str)))


def contents(folder: Path) -> list[str]:
    """The names in ``folder`` other than its mark and lock files, sorted ([] for a missing folder)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name not in (MARK, *LOCK_FILES))


def check_contents(folder: Path, own_names: set[str], marked_folders: set[str], flag: str = "--out") -> None:
    """Refuse ``folder`` unless it is missing, empty, or a run's own holding only what runs write.

    Args:
        own_names: the names a run writes in it (files and folders); a name ending in ``*`` is a prefix.
        marked_folders: the sub-folders among them that must carry a run's mark when present (a run replaces
            or deletes them).
    Raises:
        FileExistsError: the folder holds other files, carries no mark, or holds an unmarked sub-folder of
            ``marked_folders``; the message lists what it holds and the fix.
    """
    names = contents(folder)
    if not names:
        return
    shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
    fix = f"pass another {flag} (a new or empty folder), or move these away"
    if folder.is_file():
        raise FileExistsError(f"{flag} {folder}: a file, not a folder; pass a folder")
    if read_mark(folder) is None:
        raise FileExistsError(f"{flag} {folder} is not a run's folder (no {MARK}); it holds {shown}; {fix}")
    foreign = [n for n in names if not any(n == own or (own.endswith("*") and n.startswith(own[:-1]))
                                           for own in own_names)]
    if foreign:
        raise FileExistsError(f"{flag} {folder} holds files that no run writes: "
                              f"{', '.join(foreign[:6])}{' …' if len(foreign) > 6 else ''}; {fix}")
    for name in sorted(marked_folders & set(names)):
        if not (folder / name).is_dir() or read_mark(folder / name) is None:
            raise FileExistsError(f"{flag} {folder}: {name} was not written by a run (no {MARK} in it), and a run "
                                  f"replaces it; {fix}")


def claim_folder(folder: Path, own_names: set[str], flag: str = "--out") -> None:
    """Take ``folder`` for a command that writes ``own_names`` there, marking it as a run's own when it is new or
    empty: it may not be ``/`` nor hold or lie in the committed results (``check_location``), and must hold only
    what such a command writes (``check_contents``).

    Raises:
        ValueError: as ``check_location``; FileExistsError: as ``check_contents``.
    """
    check_location(folder, [("the repository's committed results", f) for f in committed_results()], flag)
    check_contents(folder, own_names, set(), flag)
    if read_mark(folder) is None:
        write_mark(folder, {"identity": None})


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
