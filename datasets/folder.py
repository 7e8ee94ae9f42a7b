"""Any folder of audio files (wav/flac/ogg), for explaining your own recordings.

Labels are optional: files in sub-folders are labelled by the sub-folder's name;
files directly in the folder are unlabelled (target −1). ``filename`` is the path
relative to the folder, as written in per_sample.csv.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg"}


def audio_files(folder: str | os.PathLike) -> list[Path]:
    """Audio files in ``folder`` (recursively), sorted.

    Raises:
        FileNotFoundError: the folder does not exist or holds no wav/flac/ogg file.
    """
    path = Path(folder)
    if not path.is_dir():
        raise FileNotFoundError(f"audio folder {path} does not exist")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"audio folder {path} holds no .wav/.flac/.ogg file")
    return files


def recordings(folder: str | os.PathLike | None, what: str, flag: str) -> list[Path]:
    """Audio files of a noise or speech folder (``audio_files``).

    Raises:
        FileNotFoundError: no folder given, a missing folder or one without audio; the
            message names ``flag``, the option that sets it.
    """
    if not folder:
        raise FileNotFoundError(f"this condition needs {what}: pass {flag} DIR")
    try:
        return audio_files(folder)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error}; pass {flag} with a folder of {what}") from None


def load_metadata(root: str | os.PathLike, class_names: list[str] | None = None) -> pd.DataFrame:
    """One row per file: filename (relative to ``root``), fold 0, category (sub-folder or ""),
    target (index of the category in ``class_names`` — by default the sorted sub-folder
    names — or −1 when unlabelled or unknown to the classifier), recording (the file name:
    each file is its own recording for the split)."""
    root = Path(root)
    files = audio_files(root)
    categories = [p.parent.relative_to(root).as_posix() if p.parent != root else "" for p in files]
    names = class_names if class_names is not None else sorted({c for c in categories if c})
    index = {name: i for i, name in enumerate(names)}
    names_relative = [p.relative_to(root).as_posix() for p in files]
    return pd.DataFrame({"filename": names_relative, "fold": 0, "category": categories,
                         "target": [index.get(c, -1) for c in categories], "recording": names_relative})
