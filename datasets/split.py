"""Train / validation / evaluation / contaminant-pool parts of a dataset (BENCHMARK.md §6).

A ``FoldPlan`` names the folds of each part (ESC-50: train 1-3, valid 4, evaluation 4,
mixtures from 5). When a copy lacks some of the plan's folds (e.g. the shared
fold-4-only ESC-50), the available clips are split deterministically, stratified by
class, instead.
"""
from __future__ import annotations

from dataclasses import dataclass

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
    def parse(cls, text: str) -> "FoldPlan":
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
    filename, fold, target, category, ...), sorted by filename, index 0..n-1.

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


def make_split(meta: pd.DataFrame, seed: int, plan: FoldPlan) -> Split:
    """Split metadata into train / valid / evaluation / contaminant pool (§6).

    All of ``plan``'s folds present (ESC-50: 1-3:4:4:5): the plan's folds (``seed`` unused).

    Otherwise (a partial copy): per class (n clips, in filename order, shuffled with
    ``numpy.random.default_rng(seed)``), round(n*5/8) train, round(n/8) valid (at
    least 1 when n >= 3), the rest evaluation; the contaminant pool is the valid
    part (held out from evaluation). For 8 clips per class: 5 / 1 / 2.

    Deterministic: the same ``meta`` rows (in any order) and seed give the same split.
    """
    meta = meta.sort_values("filename", kind="stable").reset_index(drop=True)
    folds = set(int(f) for f in meta["fold"].unique())
    if plan.all_folds <= folds:
        fold = meta["fold"]
        return Split(
            train=_part(meta, fold.isin(plan.train)),
            valid=_part(meta, fold.isin(plan.valid)),
            evaluation=_part(meta, fold.isin(plan.evaluation)),
            contaminant_pool=_part(meta, fold.isin(plan.pool)),
            protocol=f"official folds: {plan}")

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
    protocol = (f"partial copy: folds {sorted(folds)} only (not all of {sorted(plan.all_folds)}); stratified "
                f"split per class round(n*5/8) train / round(n/8) valid / rest evaluation "
                f"(seed {seed}): {counts.get('train', 0)} train, {counts.get('valid', 0)} "
                f"valid, {counts.get('evaluation', 0)} evaluation; mixtures from the valid "
                f"part (held out from evaluation)")
    return Split(train=_part(meta, role == "train"), valid=valid,
                 evaluation=_part(meta, role == "evaluation"),
                 contaminant_pool=valid.copy(), protocol=protocol)
