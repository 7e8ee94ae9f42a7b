"""ESC-50 metadata, data-root resolution and the train/valid/evaluation split (BENCHMARK.md §6).

Works unchanged on the full official release (2,000 clips, folds 1-5) and on a
partial copy (e.g. the shared fold-4-only copy, 400 clips), where a seeded,
class-stratified split inside the available clips replaces the official folds.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ESC50_URL = "https://github.com/karolpiczak/ESC-50"
ESC50_ARCHIVE = "https://github.com/karoldvl/ESC-50/archive/master.zip"
COLUMNS = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
OFFICIAL_FOLDS = {1, 2, 3, 4, 5}


class DatasetNotFoundError(FileNotFoundError):
    """ESC-50 is not where the benchmark looked; the message says where to get it."""


def _not_found(what: str, source: str) -> DatasetNotFoundError:
    return DatasetNotFoundError(
        f"ESC-50 not found: {what} (data root taken from {source}). "
        f"Download ESC-50 from {ESC50_URL} (archive: {ESC50_ARCHIVE}), unpack it so "
        f"that DIR/meta/esc50.csv and DIR/audio/ exist, and point the benchmark at it "
        f"with --data-root DIR or ESC50_ROOT=DIR.")


def default_cache_dir() -> Path:
    """Per-user default location: ``$XDG_CACHE_HOME`` (or ``~/.cache``)/lmac-benchmark/esc50."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lmac-benchmark" / "esc50"


def resolve_data_root(data_root: str | os.PathLike | None = None) -> Path:
    """Find the ESC-50 root directory.

    Order: ``data_root`` (the ``--data-root`` value) if given, else ``$ESC50_ROOT``,
    else :func:`default_cache_dir`.

    Returns:
        the absolute root path, containing ``meta/esc50.csv`` and ``audio/``.
    Raises:
        DatasetNotFoundError: the chosen directory lacks ``meta/esc50.csv`` or
            ``audio/``; the message names what was looked for and how to fix it.
    """
    if data_root:
        root, source = Path(data_root), "--data-root"
    elif os.environ.get("ESC50_ROOT"):
        root, source = Path(os.environ["ESC50_ROOT"]), "$ESC50_ROOT"
    else:
        root, source = default_cache_dir(), "the default cache directory"
    root = root.expanduser().resolve()
    csv, audio = root / "meta" / "esc50.csv", root / "audio"
    if not csv.is_file():
        raise _not_found(f"no metadata file {csv}", source)
    if not audio.is_dir():
        raise _not_found(f"no audio directory {audio}", source)
    return root


def load_metadata(root: str | os.PathLike) -> pd.DataFrame:
    """Read ``root/meta/esc50.csv``.

    Returns:
        DataFrame with the released columns (filename, fold, target, category, esc10,
        src_file, take), one row per clip, sorted by filename, index 0..n-1.
    Raises:
        DatasetNotFoundError: the CSV is missing.
        ValueError: the CSV lacks a released column.
        FileNotFoundError: listed audio files are missing (count and first names given).
    """
    root = Path(root)
    csv = root / "meta" / "esc50.csv"
    if not csv.is_file():
        raise _not_found(f"no metadata file {csv}", str(root))
    meta = pd.read_csv(csv)
    missing_cols = [c for c in COLUMNS if c not in meta.columns]
    if missing_cols:
        raise ValueError(f"{csv} lacks columns {missing_cols}; expected the released "
                         f"ESC-50 columns {COLUMNS}")
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    missing = [f for f in meta["filename"] if not (root / "audio" / f).is_file()]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise FileNotFoundError(
            f"{len(missing)} of {len(meta)} audio files listed in {csv} are missing "
            f"from {root / 'audio'}: {shown}. Re-download ESC-50 ({ESC50_ARCHIVE}) or "
            f"remove those rows from the CSV.")
    return meta


def class_names(meta: pd.DataFrame) -> list[str]:
    """Category names ordered by target id (index i = name of target i)."""
    pairs = meta[["target", "category"]].drop_duplicates().sort_values("target")
    return pairs["category"].tolist()


@dataclass
class Split:
    """The benchmark's data parts (§6). Each part is a metadata DataFrame (released
    columns), sorted by filename, index 0..n-1.

    train: classifier / interpreter training; valid: validation; evaluation: base
    clips that are explained; contaminant_pool: clips mixed into the evaluation
    clips (OOD mixtures); protocol: human-readable description of how it was made.
    """
    train: pd.DataFrame
    valid: pd.DataFrame
    evaluation: pd.DataFrame
    contaminant_pool: pd.DataFrame
    protocol: str

    def describe(self) -> dict:
        """JSON-ready summary for run.json: protocol, counts and filenames per part."""
        parts = {"train": self.train, "valid": self.valid,
                 "evaluation": self.evaluation, "contaminant_pool": self.contaminant_pool}
        return {"protocol": self.protocol,
                "counts": {k: int(len(v)) for k, v in parts.items()},
                "files": {k: v["filename"].tolist() for k, v in parts.items()}}


def _part(meta: pd.DataFrame, mask) -> pd.DataFrame:
    return meta[mask].sort_values("filename", kind="stable").reset_index(drop=True)


def make_split(meta: pd.DataFrame, seed: int = 0) -> Split:
    """Split ESC-50 metadata into train / valid / evaluation / contaminant pool (§6).

    Full release (folds 1-5 all present): official protocol — train folds 1-3,
    valid fold 4, evaluation fold 4, contaminant pool fold 5 (``seed`` unused).

    Partial copy (otherwise): per class (n clips, in filename order, shuffled with
    ``numpy.random.default_rng(seed)``), round(n*5/8) train, round(n/8) valid (at
    least 1 when n >= 3), the rest evaluation; the contaminant pool is the valid
    part (held out from evaluation). For 8 clips per class: 5 / 1 / 2.

    Deterministic: the same ``meta`` rows (in any order) and seed give the same split.
    """
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    folds = set(int(f) for f in meta["fold"].unique())
    if OFFICIAL_FOLDS <= folds:
        fold = meta["fold"]
        return Split(
            train=_part(meta, fold.isin([1, 2, 3])),
            valid=_part(meta, fold == 4),
            evaluation=_part(meta, fold == 4),
            contaminant_pool=_part(meta, fold == 5),
            protocol="official folds: train 1-3, valid 4, evaluation 4, mixtures from fold 5")

    rng = np.random.default_rng(seed)
    role = pd.Series("evaluation", index=meta.index)
    for target in sorted(meta["target"].unique()):
        idx = meta.index[meta["target"] == target].to_numpy()  # filename order
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_train = int(np.floor(n * 5 / 8 + 0.5))
        n_valid = int(np.floor(n / 8 + 0.5))
        if n >= 3:
            n_valid = max(n_valid, 1)
        n_valid = min(n_valid, n - n_train)
        role.loc[idx[:n_train]] = "train"
        role.loc[idx[n_train:n_train + n_valid]] = "valid"
    valid = _part(meta, role == "valid")
    counts = role.value_counts()
    protocol = (f"partial copy: folds {sorted(folds)} only (not all of 1-5); stratified "
                f"split per class round(n*5/8) train / round(n/8) valid / rest evaluation "
                f"(seed {seed}): {counts.get('train', 0)} train, {counts.get('valid', 0)} "
                f"valid, {counts.get('evaluation', 0)} evaluation; mixtures from the valid "
                f"part (held out from evaluation)")
    return Split(train=_part(meta, role == "train"), valid=valid,
                 evaluation=_part(meta, role == "evaluation"),
                 contaminant_pool=valid.copy(), protocol=protocol)
