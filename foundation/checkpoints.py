"""Trained parts (classifier, L-MAC decoder, ...): shipped reference models and the checkpoint cache,
both keyed by configuration.

A trained module is stored as ``<kind>-<key>.pt`` (a state dict) with ``<kind>-<key>.json`` beside
it (the configuration and training log), where ``key`` is a hash of the configuration: a second run
with the same configuration reuses the checkpoint, a changed setting trains anew. A configuration
names what the weights depend on by content: the training audio, the noise clips and any given
checkpoint enter it as SHA-256 digests of their bytes (``file_digests``), so that other audio or
weights under the same names train anew.

Two places hold such files. ``REFERENCE_MODELS`` (``results/reference-models/`` of the repository)
holds the shipped reference models of the CPU profile, each listed in its ``manifest.json`` with its
SHA-256: a run whose configuration matches one uses it, so that every machine explains the same
classifier (training is not bit-reproducible across processors). The checkpoint cache (``--cache-dir``)
holds what was trained on this machine; ``--retrain`` ignores the shipped models and trains into it.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from torch import nn

from datasets import roots
from foundation import distributed
from foundation.files import DiskFullError, sha256_of, write_then_replace
from foundation.provenance import versions

REFERENCE_MODELS = Path(__file__).resolve().parents[1] / "results" / "reference-models"
"""The shipped reference models and their ``manifest.json``."""


def config_key(config: dict[str, Any]) -> str:
    """16-hex-digit SHA-256 of the configuration's canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or holds more than tensors (refused unread)."""


def read_state_dict(path: str | os.PathLike, flag: str) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``torch.load(..., weights_only=True)``) on the CPU.

    Args:
        path: the checkpoint file.
        flag: the option that named it (for the message), e.g. "--lmac-checkpoint".
    Returns:
        the name → tensor mapping.
    Raises:
        CheckpointError: missing file; not a PyTorch file (random bytes, truncated);
            a pickle holding objects other than tensors, which is refused because
            unpickling it could run code; or not a mapping of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{flag} {path}: no such file; pass the path of a state-dict checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # refused by weights_only, or random / truncated bytes
        unsafe = _unsafe_globals(path)
        if unsafe:  # a pickle that would import and call these when loaded unsafely
            raise CheckpointError(f"{flag} {path}: refused: the file holds Python objects other than tensors "
                                  f"({', '.join(unsafe[:3])}), and unpickling it could run code; pass a plain state "
                                  "dict (torch.save(model.state_dict(), ...))") from None
        raise CheckpointError(f"{flag} {path}: not a readable PyTorch checkpoint (corrupt, or not a torch.save file); "
                              "pass a state dict written by torch.save") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{flag} {path}: not a state dict (a mapping of names to tensors); pass one written "
                              "by torch.save(model.state_dict(), ...)")
    return state


def _unsafe_globals(path: Path) -> list[str]:
    """The non-tensor globals a checkpoint's pickle names (read, never executed); [] if none or unreadable."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a pickle torch can scan: random or truncated bytes
        return []


def file_digests(paths: list[Path], cache_dir: Path | None) -> list[str]:
    """SHA-256 (hex) of each file's bytes, in order.

    A digest is remembered in ``cache_dir/file-digests.json`` (unless ``cache_dir`` is
    None) under the file's resolved path with its size and modification time, and
    recomputed when either changes.

    Raises:
        OSError: a file cannot be read.
    """
    record = Path(cache_dir or ".") / "file-digests.json"
    try:
        known = json.loads(record.read_text()) if cache_dir else {}
    except (OSError, ValueError):
        known = {}
    digests, changed = [], False
    for path in paths:
        name, status = str(Path(path).resolve()), os.stat(path)
        entry = known.get(name)
        if not entry or entry["size"] != status.st_size or entry["mtime_ns"] != status.st_mtime_ns:
            entry = {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256": sha256_of(path)}
            known[name], changed = entry, True
        digests.append(entry["sha256"])
    if changed and cache_dir:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_then_replace(record, lambda path: path.write_text(json.dumps(known)))
    return digests


def content_key(paths: list[Path], cache_dir: Path | None, **context: Any) -> str:
    """``config_key`` of the files' contents in order (names left out) and ``context``
    (e.g. labels, normalisation): the same audio under other names gives the same key."""
    return config_key({"sha256": file_digests(paths, cache_dir), **context})


def default_cache_dir() -> Path:
    """``$LMAC_BENCHMARK_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/lmac-benchmark/checkpoints``."""
    if os.environ.get("LMAC_BENCHMARK_CACHE"):
        return Path(os.environ["LMAC_BENCHMARK_CACHE"])
    return roots.default_cache_dir("checkpoints")


def load_state(module: nn.Module, path: Path, flag: str = "checkpoint") -> None:
    """Load a state dict safely (``read_state_dict``) into ``module``.

    Raises:
        CheckpointError: unreadable or unsafe file (see ``read_state_dict``).
        ValueError: a tensor's shape does not fit (the message names it and the fix).
    """
    state = read_state_dict(path, flag)
    own = module.state_dict()
    for name, tensor in state.items():
        if name in own and own[name].shape != tensor.shape:
            raise ValueError(
                f"checkpoint {path}: tensor {name!r} has shape {tuple(tensor.shape)}, the model expects "
                f"{tuple(own[name].shape)}; the checkpoint was made for another width or class count"
            )
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"checkpoint {path}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")


RESTORE = "restore it with git checkout results/reference-models, or pass --retrain to train into the cache instead"


def reference_manifest(reference_dir: Path) -> dict[str, dict]:
    """The entries of ``reference_dir/manifest.json`` by file name: the shipped models are a contract.

    Raises:
        CheckpointError: the manifest is missing or not readable JSON (names the file and the fix).
    """
    path = Path(reference_dir) / "manifest.json"
    if not path.is_file():
        raise CheckpointError(f"{path} is missing, so the shipped reference models cannot be checked; {RESTORE}")
    try:
        return {entry["file"]: entry for entry in json.loads(path.read_text())["models"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path}: not a readable manifest of reference models; {RESTORE}") from None


def _shipped(reference_dir: Path | None, name: str) -> Path | None:
    """``reference_dir/name`` when the manifest lists it and its bytes match the listed SHA-256; None when
    neither the manifest nor the folder holds it.

    Raises:
        CheckpointError: a missing manifest; a shipped file the manifest does not list; a listed file that is
            missing or whose SHA-256 differs (altered or an LFS pointer).
    """
    if reference_dir is None:
        return None
    entry = reference_manifest(reference_dir).get(name)
    path = Path(reference_dir) / name
    if entry is None:
        if path.exists():
            raise CheckpointError(f"shipped reference model {path} is not listed in "
                                  f"{Path(reference_dir) / 'manifest.json'}; {RESTORE}")
        return None
    if not path.is_file() or sha256_of(path) != entry["sha256"]:
        raise CheckpointError(f"shipped reference model {path} is missing or does not match the SHA-256 of its "
                              f"manifest; {RESTORE}")
    return path


def training_record(checkpoint: Path) -> dict:
    """The configuration and training log written beside a checkpoint (``<kind>-<key>.json``)."""
    return json.loads(Path(checkpoint).with_suffix(".json").read_text())


def describe_models(used: list[dict]) -> str:
    """One line for under a table: which trained parts a run used and where they came from."""
    sources = {"shipped": "shipped reference model", "cache": "checkpoint cache", "trained": "trained in this run"}
    described = dict.fromkeys(f"{m['kind']}-{m['key']} ({sources[m['source']]})" for m in used)  # once each
    return "models: " + ("; ".join(described) or "none trained")


def _all_finite(module: nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in module.state_dict().values() if t.is_floating_point())


def cached_training(
    module: nn.Module, kind: str, config: dict[str, Any], cache_dir: Path, train: Callable[[nn.Module], dict],
    reference_dir: Path | None = None, used: list[dict] | None = None, expected: dict[str, str] | None = None,
) -> str:
    """Load ``module``'s weights from the shipped reference models or the cache, or train it with
    ``train(module)`` and store them in the cache.

    Args:
        module: freshly built module; filled in place.
        kind: file-name prefix ("classifier", "lmac", ...).
        config: everything the trained weights depend on.
        cache_dir: checkpoint directory (created if missing).
        train: trains ``module`` in place and returns a JSON-able training log.
        reference_dir: shipped reference models looked up first (``REFERENCE_MODELS``), or None
            (``--retrain``: only the cache).
        used: if given, gets one entry per call: kind, key, source ("shipped", "cache" or
            "trained"), path and SHA-256 of the weights used (for run.json and the table's notes).
        expected: file name → SHA-256 of the models of a run that is resumed or reported on (its run.json's
            ``models``): the weights must be found under one of these names with exactly these bytes, and
            nothing is trained.
    Returns:
        the configuration key (to chain into dependants' configurations).
    Raises:
        CheckpointError: a shipped model altered or unlisted, a cached file that does not load (the message
            names the file to delete), or with ``expected`` a model that would be trained or differs.
        ValueError: training gave non-finite weights (nothing is cached). OSError: the cache's device is full.

    In a torchrun launch every rank calls this together. A checkpoint of the same configuration
    trained by that many processes, or else by one process, is loaded; otherwise all ranks train
    (``train`` uses DDP), rank 0 writes the checkpoint under a key that records the world size, and
    the others wait for it and load it. The cache's files are written under a temporary name and
    moved into place, the weights only when every one is finite.
    """
    current = distributed.ranks()
    single_key = config_key(config)
    if current.world_size > 1:  # DDP training gives other weights than one process: its own key
        config = {**config, "ddp_world_size": current.world_size}
    key = config_key(config)

    def note(source: str, path: Path, known: str) -> str:
        digest = sha256_of(path)
        if expected is not None and expected.get(path.name) != digest:
            recorded = f"{expected[path.name][:12]}…" if path.name in expected else "no model of that name"
            raise CheckpointError(f"{path} is not the model the run used: SHA-256 {digest[:12]}…, its run.json "
                                  f"records {recorded}; restore that file, or run anew into another --out")
        if current.leader:
            print(f"{kind}: {'shipped reference model' if source == 'shipped' else source} {path}")
        if used is not None:
            used.append({"kind": kind, "key": known, "source": source, "path": str(path), "sha256": digest})
        return known

    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    # rank 0 holds the entry's lock: another run that needs it waits, then loads what this one trained
    with FileLock(str(Path(cache_dir) / f".{kind}-{key}.lock")) if current.leader else contextlib.nullcontext():
        for known in dict.fromkeys([key, single_key]):
            name = f"{kind}-{known}.pt"
            shipped = _shipped(reference_dir, name)
            if shipped is not None:
                load_state(module, shipped, "shipped reference model")
                return note("shipped", shipped, known)
            if (Path(cache_dir) / name).exists():
                try:
                    load_state(module, Path(cache_dir) / name, "cached model")
                except (CheckpointError, ValueError) as error:
                    raise CheckpointError(f"{error}. Delete {Path(cache_dir) / name} and run again: it is then "
                                          "trained anew") from None
                return note("cache", Path(cache_dir) / name, known)
        path = Path(cache_dir) / f"{kind}-{key}.pt"
        if expected is not None:
            recorded = [name for name in expected if name.startswith(f"{kind}-")]
            raise CheckpointError(f"{kind}-{key}.pt is neither shipped nor in --cache-dir {cache_dir}, and the run's "
                                  f"rows were computed with {', '.join(recorded) or 'other models'}; training it again "
                                  "would be a new draw, so nothing trains: restore the file in the cache, or run anew "
                                  "into another --out")
        log = train(module)  # on every rank of a torchrun launch, together (DDP)
        if not _all_finite(module):
            raise ValueError(f"training the {kind} gave NaN or infinite weights, so nothing was cached; check the "
                             "method's --set values (a learning rate or loss weight out of range)")
        if current.leader:  # the record first, then the weights, each under a temporary name moved into place
            record = json.dumps({"config": config, "log": log, "trained_with": versions()}, indent=1, default=str)
            try:
                write_then_replace(path.with_suffix(".json"), lambda json_path: json_path.write_text(record))
                write_then_replace(path, lambda weights: torch.save(module.state_dict(), weights))
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                path.with_suffix(".json").unlink(missing_ok=True)
                raise DiskFullError(errno.ENOSPC, f"--cache-dir {cache_dir}: no space left on its device, so the "
                                                  f"trained {kind} was not cached (the cache holds what it held "
                                                  "before); free space or pass another --cache-dir and run again "
                                                  "(it trains again)") from None
        distributed.barrier(current)
        if not current.leader:
            load_state(module, path)  # the others use rank 0's weights
        return note("trained", path, key)
