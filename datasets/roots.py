"""Where a dataset lives: ``--data-root``, else an environment variable, else a per-user cache."""
from __future__ import annotations

import os
from pathlib import Path


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where the benchmark looked; the message says where to get it."""


def default_cache_dir(name: str) -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``)/lmac-benchmark/``name``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lmac-benchmark" / name


DEFAULT_ROOTS = {"esc50": ("ESC50_ROOT", "esc50"), "us8k": ("US8K_ROOT", "UrbanSound8K"),
                 "controlled": ("ESC50_ROOT", "esc50")}
"""A dataset's environment variable and the name of its folder in the per-user cache."""


def default_data_root(dataset: str) -> Path:
    """Where ``dataset`` is looked up without ``--data-root``: ``$<ENV>``, else ``default_cache_dir(name)``
    (``DEFAULT_ROOTS``); it need not exist."""
    env_var, name = DEFAULT_ROOTS[dataset]
    return Path(os.environ.get(env_var) or default_cache_dir(name)).expanduser()


def resolve_root(data_root: str | os.PathLike | None, env_var: str, name: str, required: list[str],
                 how_to_get: str) -> Path:
    """The dataset's root: ``data_root`` if given, else ``$env_var``, else ``default_cache_dir(name)``.

    Args:
        required: paths relative to the root that must exist (files or folders).
        how_to_get: where to download the dataset, for the error message.
    Returns:
        the absolute root.
    Raises:
        DatasetNotFoundError: a required path is missing; the message names it, the
            source of the root, where to get the dataset and how to point at it.
    """
    if data_root:
        root, source = Path(data_root), "--data-root"
    elif os.environ.get(env_var):
        root, source = Path(os.environ[env_var]), f"${env_var}"
    else:
        root, source = default_cache_dir(name), "the default cache directory"
    root = root.expanduser().resolve()
    for relative in required:
        if not (root / relative).exists():
            raise DatasetNotFoundError(
                f"{name} not found: no {root / relative} (data root taken from {source}). {how_to_get} "
                f"Unpack it so that DIR/{' and DIR/'.join(required)} exist, and point the benchmark at it "
                f"with --data-root DIR or {env_var}=DIR.")
    return root
