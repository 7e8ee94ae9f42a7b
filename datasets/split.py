"""Train / validation / evaluation / contaminant-pool parts of a dataset (protocol §6).

A ``FoldPlan`` names the folds of each part (ESC-50: train 1-3, valid 4, evaluation 4,
mixtures from 5). When a copy lacks some of the plan's folds (e.g. the shared
fold-4-only ESC-50), the available clips are split deterministically, stratified by
class and grouped by source recording, instead. No recording is ever in two parts that
must be disjoint (``check_disjoint``): a classifier is never scored on a recording it
learned from.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


def _folds(text: str) -> tuple[int, ...]:
    folds: list[int] = []
    for piece in text.split(","):
        low, _, high = piece.partition("-")
        try:
            folds += range(int(low), int(high or low) + 1)
        except ValueError:
            raise ValueError(f"{text!r} is not a fold list such as 1-3 or 1,2,5") from None
    if not folds:
        raise ValueError(f"{text!r} names no fold")
    return tuple(folds)


def _text(folds: tuple[int, ...]) -> str:
    consecutive = len(folds) > 2 and list(folds) == list(range(folds[0], folds[-1] + 1))
    return f"{folds[0]}-{folds[-1]}" if consecutive else ",".join(map(str, folds))


@dataclass(frozen=True)
class FoldPlan:
    """Folds of each part; ``parse("1-3:4:4:5")`` reads TRAIN:VALID:EVALUATION:POOL."""

    train: tuple[int, ...]
    valid: tuple[int, ...]
    evaluation: tuple[int, ...]
    pool: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> FoldPlan:
        """Raises ValueError unless ``text`` is four colon-separated fold lists such as "1-8:9:10:9"."""
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(f"folds {text!r}: expected TRAIN:VALID:EVALUATION:POOL, e.g. 1-3:4:4:5")
        return cls(*(_folds(p) for p in parts))

    @property
    def all_folds(self) -> set[int]:
        return {*self.train, *self.valid, *self.evaluation, *self.pool}

    def __str__(self) -> str:
        return (f"train {_text(self.train)}, valid {_text(self.valid)}, evaluation {_text(self.evaluation)}, "
                f"mixtures from {_text(self.pool)}")


@dataclass
class Split:
    """The benchmark's data parts (§6). Each part is a metadata DataFrame (columns
    filename, fold, target, category, recording, ...), sorted by filename, index 0..n-1.

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
        """JSON-ready summary for run.json: protocol, clips and recordings per part, the recordings
        that two parts share (0 unless the fold plan makes validation and evaluation the same clips),
        and the file names per part."""
        parts = {"train": self.train, "valid": self.valid,
                 "evaluation": self.evaluation, "contaminant_pool": self.contaminant_pool}
        return {"protocol": self.protocol,
                "counts": {k: int(len(v)) for k, v in parts.items()},
                "recordings": {k: int(v["recording"].nunique()) for k, v in parts.items()},
                "shared_recordings": {f"{a} & {b}": len(set(parts[a]["recording"]) & set(parts[b]["recording"]))
                                      for a, b in (("train", "valid"), ("train", "evaluation"),
                                                   ("valid", "evaluation"), ("evaluation", "contaminant_pool"))},
                "files": {k: v["filename"].tolist() for k, v in parts.items()}}

    def summary(self) -> str:
        """One line for under a table: clips and recordings per part."""
        parts = {"train": self.train, "valid": self.valid, "evaluation": self.evaluation,
                 "mixture pool": self.contaminant_pool}
        return ", ".join(f"{name} {len(p)} clips / {p['recording'].nunique()} recordings" for name, p in parts.items())


def check_rows(meta: pd.DataFrame, csv: Path, integer_columns: list[str], name_column: str,
               class_ids: tuple[str, int] | None = None) -> pd.DataFrame:
    """``meta`` as read from ``csv`` with ``integer_columns`` as int64, after checking every row.

    ``class_ids``: the integer column of class ids and the dataset's class count, e.g. ("target", 50): each
    value must be in 0 … count − 1 (a −1 would pass as an unlabelled clip and fail in training).

    Raises:
        ValueError: a value of an integer column that is not an integer, a class id out of range, or a clip
            listed twice; the message names the file, the CSV line (header = line 1), the value and the fix.
    """
    meta = meta.copy()
    for column in integer_columns:
        values = pd.to_numeric(meta[column], errors="coerce")
        bad = meta.index[values.isna() | (values != values.round())]
        if len(bad):
            line = int(bad[0]) + 2
            raise ValueError(f"{csv}, line {line}: {column} {meta.at[bad[0], column]!r} is not an integer "
                             f"({len(bad)} such row(s)); fix the row or restore the released file")
        meta[column] = values.astype("int64")
        if class_ids and class_ids[0] == column:
            outside = meta.index[(meta[column] < 0) | (meta[column] >= class_ids[1])]
            if len(outside):
                raise ValueError(f"{csv}, line {int(outside[0]) + 2}: {column} {meta.at[outside[0], column]} is not "
                                 f"a class id of this dataset (0 … {class_ids[1] - 1}; {len(outside)} such row(s)); "
                                 "give the row its class's id, delete it, or restore the released file")
    repeated = meta.index[meta[name_column].duplicated(keep=False)]
    if len(repeated):
        lines = ", ".join(str(int(i) + 2) for i in repeated[:6])
        raise ValueError(f"{csv}: {meta.at[repeated[0], name_column]} is listed more than once (lines {lines}); a "
                         "repeated row would put one clip in two parts: delete the repeated rows")
    return meta


def contiguous_targets(meta: pd.DataFrame, source: str) -> pd.DataFrame:
    """``meta`` with its labelled targets renumbered 0…N−1 in the order of the original ids
    (the full ESC-50 and UrbanSound8K are unchanged; a subset such as dog, rooster, rain =
    0, 1, 10 becomes 0, 1, 2), category names kept.

    Raises:
        ValueError: ``meta`` has no row (``source``, e.g. the CSV, lists no clip), or a
            target id carries two category names.
    """
    if meta.empty:
        raise ValueError(f"{source} lists no clip (only its header?); restore the released file or list the clips "
                         "you have")
    labelled = meta["target"] >= 0
    pairs = meta.loc[labelled, ["target", "category"]].drop_duplicates()
    if pairs["target"].duplicated().any():
        target = int(pairs.loc[pairs["target"].duplicated(), "target"].iloc[0])
        raise ValueError(f"{source}: target {target} has several category names; fix the metadata")
    order = {target: i for i, target in enumerate(sorted(pairs["target"]))}
    renumbered = meta.copy()
    renumbered.loc[labelled, "target"] = meta.loc[labelled, "target"].map(order)
    return renumbered


def class_names(meta: pd.DataFrame) -> list[str]:
    """Category names ordered by target id (index i = name of target i); unlabelled rows (−1) skipped."""
    pairs = meta.loc[meta["target"] >= 0, ["target", "category"]].drop_duplicates().sort_values("target")
    return pairs["category"].tolist()


def _part(meta: pd.DataFrame, mask) -> pd.DataFrame:
    return meta[mask].sort_values("filename", kind="stable").reset_index(drop=True)


PART_NAMES = ("train", "valid", "evaluation")


def _grouped_roles(meta: pd.DataFrame, seed: int) -> pd.Series:
    """Role ("train", "valid" or "evaluation") of each row: whole recordings are assigned, class by class.

    A recording (``recording`` column) belongs to the class most of its clips have (the smallest
    target on a tie). Per class, with n clips: targets round(n·5/8) train, round(n/8) valid (at
    least 1 when the class has three recordings or more), the rest evaluation. The class's
    recordings, in name order shuffled with ``numpy.random.default_rng(seed)`` and then stably
    sorted by clip count (largest first), each go whole to the part whose target is the least
    filled (largest target − clips assigned; ties: train, valid, evaluation). A class of one
    recording is training data only; of two, train and evaluation.
    """
    rng = np.random.default_rng(seed)
    owner = meta.groupby("recording")["target"].agg(lambda t: t.value_counts().sort_index().idxmax())
    sizes = meta["recording"].value_counts()
    role = pd.Series("evaluation", index=meta.index)
    for target in sorted(owner.unique()):
        recordings = np.array(sorted(owner.index[owner == target]))
        recordings = recordings[rng.permutation(len(recordings))]
        recordings = sorted(recordings, key=lambda r: -sizes[r])  # stable: the shuffle breaks ties
        n = int(sizes[recordings].sum())
        n_train, n_valid = int(np.floor(n * 5 / 8 + 0.5)), int(np.floor(n / 8 + 0.5))
        if len(recordings) >= 3:
            n_valid = max(n_valid, 1)
        wanted = {"train": n_train, "valid": n_valid, "evaluation": n - n_train - n_valid}
        for recording in recordings:
            part = max(PART_NAMES, key=lambda p: (wanted[p], -PART_NAMES.index(p)))
            role[meta["recording"] == recording] = part
            wanted[part] -= int(sizes[recording])
    return role


def make_split(meta: pd.DataFrame, seed: int, plan: FoldPlan) -> Split:
    """Split metadata into train / valid / evaluation / contaminant pool (§6), never splitting a recording.

    All of ``plan``'s folds present (ESC-50: 1-3:4:4:5): the plan's folds (``seed`` unused); the
    released folds keep a recording's clips together.

    Otherwise (a partial copy): recordings are assigned whole, stratified by class
    (``_grouped_roles``: about 5/8 of each class's clips train, 1/8 valid, the rest evaluation);
    the contaminant pool is the valid part (held out from evaluation).

    ``meta`` needs a ``recording`` column (ESC-50's ``src_file``, UrbanSound8K's ``fsID``, a
    folder's file name). Deterministic: the same rows (in any order) and seed give the same split.
    The result passes ``check_disjoint``.

    Raises:
        ValueError: a recording in two parts that must be disjoint (``check_disjoint``).
    """
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    folds = set(int(f) for f in meta["fold"].unique())
    if plan.all_folds <= folds:
        fold = meta["fold"]
        split = Split(
            train=_part(meta, fold.isin(plan.train)),
            valid=_part(meta, fold.isin(plan.valid)),
            evaluation=_part(meta, fold.isin(plan.evaluation)),
            contaminant_pool=_part(meta, fold.isin(plan.pool)),
            protocol=f"official folds: {plan}" + (
                " (validation and evaluation are the same clips, as the authors' configuration; --folds with "
                "another validation fold separates them)" if plan.valid == plan.evaluation else ""))
        check_disjoint(split, plan.valid == plan.evaluation)
        return split

    role = _grouped_roles(meta, seed)
    valid = _part(meta, role == "valid")
    counts = role.value_counts()
    protocol = (f"partial copy: folds {sorted(folds)} only (not all of {sorted(plan.all_folds)}); split by "
                f"recording, stratified per class: whole recordings, about 5/8 of each class's clips train, 1/8 "
                f"valid, the rest evaluation (seed {seed}): {counts.get('train', 0)} train, "
                f"{counts.get('valid', 0)} valid, {counts.get('evaluation', 0)} evaluation clips; mixtures from "
                f"the valid part (held out from evaluation)")
    split = Split(train=_part(meta, role == "train"), valid=valid, evaluation=_part(meta, role == "evaluation"),
                  contaminant_pool=valid.copy(), protocol=protocol)
    check_disjoint(split, False)
    return split


def check_disjoint(split: Split, valid_is_evaluation: bool) -> None:
    """Assert that no clip and no recording is in two parts that must be disjoint: training against
    every other part, evaluation against the contaminant pool, and validation against evaluation
    unless the fold plan makes them the same clips (``valid_is_evaluation``, the authors' ESC-50 plan).

    Raises:
        ValueError: names the two parts, the number of shared recordings and the first of them.
    """
    pairs = [("train", "valid"), ("train", "evaluation"), ("train", "contaminant_pool"),
             ("evaluation", "contaminant_pool")]
    if not valid_is_evaluation:
        pairs.append(("valid", "evaluation"))
    for a, b in pairs:
        for column, what in (("filename", "clips"), ("recording", "recordings")):
            shared = sorted(set(getattr(split, a)[column].astype(str)) & set(getattr(split, b)[column].astype(str)))
            if shared:
                raise ValueError(f"the split puts {len(shared)} {what} in both the {a} and the {b} part (e.g. "
                                 f"{shared[0]}); the folds must keep a recording's clips together: pass --folds "
                                 "with disjoint fold lists, or fix the metadata's fold of those clips")
