"""ESC-50 metadata, data-root resolution and the train/valid/evaluation split (protocol §6).

Works unchanged on the full official release (2,000 clips, folds 1-5) and on a
partial copy (e.g. the shared fold-4-only copy, 400 clips), where a seeded,
class-stratified split inside the available clips replaces the official folds.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from datasets import split
from datasets.roots import DatasetNotFoundError, resolve_root
from datasets.split import FoldPlan, Split

ESC50_URL = "https://github.com/karolpiczak/ESC-50"
ESC50_ARCHIVE = "https://github.com/karoldvl/ESC-50/archive/master.zip"
COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
FOLDS = FoldPlan(train=(1, 2, 3), valid=(4,), evaluation=(4,), pool=(5,))
CLASSES = 50
"""ESC-50's class count: targets are 0 … 49."""


HOW_TO_GET = f"Download ESC-50 from {ESC50_URL} (archive: {ESC50_ARCHIVE})."


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The ESC-50 root (holding ``meta/esc50.csv`` and ``audio/``): ``--data-root``,
    else ``$ESC50_ROOT``, else ``~/.cache/lmac-benchmark/esc50``.

    Raises:
        DatasetNotFoundError: missing CSV or audio folder; the message says where to get ESC-50.
    """
    return resolve_root(data_root, "ESC50_ROOT", "esc50", ["meta/esc50.csv", "audio"], HOW_TO_GET)


def load_metadata(root: str | os.PathLike) -> pd.DataFrame:
    """Read ``root/meta/esc50.csv``.

    Returns:
        DataFrame with the released columns (filename, fold, target, category, esc10,
        src_file, take) and ``recording`` (``src_file`` as text, the source recording that
        the split keeps in one part), one row per clip, sorted by filename, index 0..n-1.
    Raises:
        DatasetNotFoundError: the CSV is missing.
        ValueError: the CSV lacks a released column, a fold or target is not an integer, a target is
            outside 0 … 49, or a clip is listed twice (file and line named).
        FileNotFoundError: listed audio files are missing (count and first names given).
    """
    root = Path(root)
    csv = root / "meta" / "esc50.csv"
    if not csv.is_file():
        raise DatasetNotFoundError(f"no ESC-50 metadata file {csv}. {HOW_TO_GET}")
    meta = pd.read_csv(csv)
    missing_cols = [c for c in COLUMNS if c not in meta.columns]
    if missing_cols:
        raise ValueError(f"{csv} lacks columns {missing_cols}; expected the released "
                         f"ESC-50 columns {COLUMNS}")
    meta = split.check_rows(meta, csv, ["fold", "target"], "filename", ("target", CLASSES))
    meta["recording"] = meta["src_file"].astype(str)  # the Freesound recording the clip was cut from
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    missing = [f for f in meta["filename"] if not (root / "audio" / f).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise FileNotFoundError(
            f"{len(missing)} of {len(meta)} audio files listed in {csv} are missing "
            f"from {root / 'audio'}: {shown}. Re-download ESC-50 ({ESC50_ARCHIVE}) or "
            f"remove those rows from the CSV.")
    return meta


def make_split(meta: pd.DataFrame, seed: int = 0, plan: FoldPlan = FOLDS) -> Split:
    """ESC-50's parts: train folds 1-3, valid 4, evaluation 4, mixtures from 5 when all
    are present, else a stratified split of the available clips (``datasets.split.make_split``)."""
    return split.make_split(meta, seed, plan)
