"""UrbanSound8K in its official layout (protocol §6).

``metadata/UrbanSound8K.csv`` (columns as released: slice_file_name, fsID, start,
end, salience, fold, classID, class) and ``audio/fold1..fold10/*.wav``; 8,732 clips
of at most 4 s, 10 classes, 10 folds. Clips are zero-padded to 5 s on load.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from datasets import split
from datasets.roots import DatasetNotFoundError, resolve_root
from datasets.split import FoldPlan, Split

COLUMNS = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
# The authors' UrbanSound8K configuration (protocol §6): train 1-3, validate 4, evaluate 5. It names no
# contaminant fold; fold 6, unused by both, plays the part of ESC-50's fold 5. The official 10-fold protocol
# (train on nine folds, test on the tenth) is ``--folds``, e.g. 1-8:9:10:9.
FOLDS = FoldPlan(train=(1, 2, 3), valid=(4,), evaluation=(5,), pool=(6,))
CLASSES = 10
"""UrbanSound8K's class count: classIDs are 0 … 9."""
HOW_TO_GET = "Download UrbanSound8K from https://urbansounddataset.weebly.com/urbansound8k.html."


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """The UrbanSound8K root (``metadata/UrbanSound8K.csv``, ``audio/``): ``--data-root``,
    else ``$US8K_ROOT``, else ``~/.cache/lmac-benchmark/UrbanSound8K``.

    Raises:
        DatasetNotFoundError: missing CSV or audio folder.
    """
    return resolve_root(data_root, "US8K_ROOT", "UrbanSound8K", ["metadata/UrbanSound8K.csv", "audio"], HOW_TO_GET)


def load_metadata(root: str | os.PathLike) -> pd.DataFrame:
    """The released CSV plus the benchmark's columns: ``filename`` (``fold{k}/{slice_file_name}``,
    relative to ``audio/``), ``target`` (classID), ``category`` (class) and ``recording`` (fsID, the
    source recording that the split keeps in one part); sorted by filename.

    Raises:
        DatasetNotFoundError: no CSV. ValueError: a released column is missing, a fold, classID or
            fsID is not an integer, a classID is outside 0 … 9, or a slice is listed twice (file and line named).
        FileNotFoundError: listed audio files are missing (count and first names given).
    """
    csv = Path(root) / "metadata" / "UrbanSound8K.csv"
    if not csv.is_file():
        raise DatasetNotFoundError(f"no UrbanSound8K metadata file {csv}. {HOW_TO_GET}")
    meta = pd.read_csv(csv)
    missing_columns = [c for c in COLUMNS if c not in meta.columns]
    if missing_columns:
        raise ValueError(f"{csv} lacks columns {missing_columns}; expected the released columns {COLUMNS}")
    meta = split.check_rows(meta, csv, ["fold", "classID", "fsID"], "slice_file_name", ("classID", CLASSES))
    meta["recording"] = meta["fsID"].astype(str)  # the Freesound recording the slice was cut from
    meta["filename"] = [f"fold{fold}/{name}" for fold, name in zip(meta["fold"], meta["slice_file_name"])]
    meta["target"], meta["category"] = meta["classID"], meta["class"]
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    missing = [f for f in meta["filename"] if not (Path(root) / "audio" / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of {len(meta)} audio files listed in {csv} are missing from "
                                f"{Path(root) / 'audio'}: {', '.join(missing[:10])}")
    return meta


def make_split(meta: pd.DataFrame, seed: int = 0, plan: FoldPlan = FOLDS) -> Split:
    """Parts by fold (default as the authors: train 1-3, valid 4, evaluation 5; mixtures from 6;
    ``--folds`` changes it), or a stratified split when a copy lacks some of the plan's folds."""
    return split.make_split(meta, seed, plan)
