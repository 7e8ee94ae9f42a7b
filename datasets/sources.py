"""Open a dataset for a run: ESC-50, UrbanSound8K, a folder of your own recordings, or the controlled
dataset made from ESC-50 (``datasets.controlled``)."""
from __future__ import annotations

import importlib.machinery
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from datasets import controlled, esc50, folder, urbansound8k
from datasets.split import FoldPlan, Split, class_names, contiguous_targets, make_split

DATASETS = ("esc50", "us8k", "folder", "controlled")
PACKAGE = Path(__file__).resolve().parent
"""This repository's ``datasets`` package, which takes Hugging Face's package name in the benchmark's process."""


@dataclass
class AudioData:
    """A dataset opened for a run: its clips' metadata (filename relative to
    ``audio_root``, fold, target, category), class names and split; for the controlled dataset
    also the ESC-50 root its backgrounds come from."""

    name: str
    root: Path
    audio_root: Path
    meta: pd.DataFrame
    class_names: list[str]
    split: Split
    background_root: Path | None = None

    def paths(self, part: pd.DataFrame) -> list[Path]:
        return [self.audio_root / name for name in part["filename"]]

    def provenance(self, part: pd.DataFrame) -> tuple[list[Path], dict]:
        """The files whose bytes define a part's audio, and what else does (for cache keys): the clips
        themselves; for the controlled dataset their ESC-50 backgrounds and the generated folder's key
        (the generator's version, the seed and every background, ``controlled.dataset_key``), since
        the generated clips differ in their last bits between processors (resampling kernels)."""
        if self.background_root is None:
            return self.paths(part), {}
        return [self.background_root / "audio" / name for name in part["background"]], {"controlled": self.root.name}


def open_dataset(name: str, data_root: str | None, seed: int, folds: str | None = None,
                 classifier_classes: list[str] | None = None, data_folds: str | None = None,
                 cache_dir: Path | None = None) -> AudioData:
    """Find, read and split a dataset (§6).

    Args:
        name: "esc50", "us8k", "folder" or "controlled".
        data_root: its folder (for esc50 / us8k also $ESC50_ROOT / $US8K_ROOT or the cache; for controlled the
            ESC-50 copy whose clips are the backgrounds).
        folds: "TRAIN:VALID:EVALUATION:POOL" fold lists, e.g. "1-8:9:10:9" (esc50 / us8k).
        classifier_classes: class names of a given classifier checkpoint; for a folder,
            every file is then evaluated (labels from sub-folders matched by name).
        data_folds: a fold list, e.g. "4" (esc50 / us8k): only these folds' clips are read, as if the
            copy held no others (the full release then gives the shared fold-4 copy's split).
        cache_dir: where the controlled dataset is generated (``controlled.prepare``, seeded by ``seed``); needed
            for controlled.
    Targets are renumbered 0…N−1 (``contiguous_targets``), class names kept.

    Raises:
        DatasetNotFoundError: esc50 / us8k not found. FileNotFoundError: no folder or
        no audio in it. ValueError: a metadata CSV without clips, a folder without
        checkpoint with fewer than two labelled classes (sub-folders), ``folds`` naming a fold the
        data does not have, ``folds`` or ``data_folds`` given for a folder, or an unknown dataset.
    """
    if name in ("esc50", "us8k", "controlled"):
        module = urbansound8k if name == "us8k" else esc50
        root = backgrounds = module.resolve_data_root(data_root)
        if name == "controlled":
            root = controlled.prepare(backgrounds, seed, cache_dir)
        meta = (controlled if name == "controlled" else module).load_metadata(root)
        if data_folds:
            meta = meta[meta["fold"].isin(FoldPlan.parse(f"{data_folds}:1:1:1").train)].reset_index(drop=True)
            if meta.empty:
                raise ValueError(f"--data-folds {data_folds}: the metadata of {root} lists no clip of these folds")
        meta = contiguous_targets(meta, f"the metadata of {root}")
        plan = FoldPlan.parse(folds) if folds else module.FOLDS
        present = set(meta["fold"].unique())
        if folds and not plan.all_folds <= present:
            raise ValueError(f"--folds {folds}: the data in {root} has no fold "
                             f"{', '.join(map(str, sorted(plan.all_folds - present)))} (it has "
                             f"{', '.join(map(str, sorted(present)))}); name folds it has, or leave --folds out to "
                             "split the available clips by recording")
        split = module.make_split(meta, seed, plan)
        return AudioData(name, root, root / "audio", meta, class_names(meta), split,
                         backgrounds if name == "controlled" else None)
    if name != "folder":
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    for flag, value in (("--folds", folds), ("--data-folds", data_folds)):
        if value:
            raise ValueError(f"{flag} {value}: --dataset folder has no folds; it is split by recording (each file "
                             "its own), or all its files are evaluated with a given classifier: leave "
                             f"{flag} out")
    if not data_root:
        raise FileNotFoundError("--dataset folder needs --data-root DIR, the folder of audio files")
    root = Path(data_root).expanduser().resolve()
    meta = folder.load_metadata(root, classifier_classes)
    if classifier_classes is not None:
        split = Split(meta, meta.iloc[:0], meta, meta, f"folder {root}: all {len(meta)} files evaluated with the "
                      "given classifier; interpreters train on the same files")
        return AudioData(name, root, root, meta, list(classifier_classes), split)
    labelled = meta[meta["target"] >= 0]
    if labelled["target"].nunique() < 2:
        raise ValueError(f"folder {root}: to train a classifier, put the files in one sub-folder per class "
                         "(at least two); to explain with a trained one, pass --classifier-checkpoint")
    split = make_split(labelled, seed, FoldPlan((1,), (1,), (1,), (1,)))
    return AudioData(name, root, root, labelled, class_names(labelled), split)


def shadowed_hugging_face(error: BaseException) -> str | None:
    """What to tell a user whose code (an ``--import`` module) wanted Hugging Face ``datasets`` and got this
    repository's package of the same name: an ImportError about ``datasets`` or ``datasets.*`` coming from
    ``PACKAGE``, or an AttributeError of that module. None for any other error.

    The message says whether Hugging Face ``datasets`` is installed (found on the module path outside this
    repository) and the way out: export the audio to files in a separate script and run on the folder.
    """
    ours = getattr(sys.modules.get("datasets"), "__file__", None)
    ours = ours is not None and Path(ours).resolve().parent == PACKAGE
    if isinstance(error, ImportError):
        name = error.name or ""
        clash = (name == "datasets" and bool(error.path) and Path(error.path).resolve().parent == PACKAGE) or (
            isinstance(error, ModuleNotFoundError) and name.startswith("datasets.") and ours)
    elif isinstance(error, AttributeError):
        module = getattr(error, "obj", None)
        clash = getattr(module, "__name__", None) == "datasets" and module is sys.modules.get("datasets") and ours
    else:
        clash = False
    if not clash:
        return None
    elsewhere = [p for p in sys.path if Path(p or ".").resolve() != PACKAGE.parent]
    installed = importlib.machinery.PathFinder.find_spec("datasets", elsewhere)
    state = "nor is it installed in this environment: pip install datasets"
    if installed and installed.origin:
        state = f"installed in {Path(installed.origin).parent}, it is shadowed"
    return (f"the module wants Hugging Face datasets, but in the benchmark's process the name datasets is this "
            f"repository's package ({PACKAGE}), so Hugging Face datasets cannot be imported there ({state}); "
            "export the audio to files in a separate script kept outside this repository (one sub-folder per "
            "class, e.g. with datasets.Audio(decode=False) and each row's audio bytes) and run with --dataset folder "
            "--data-root DIR")
