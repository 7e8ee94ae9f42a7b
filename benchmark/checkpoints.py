"""Checkpoint cache of trained parts (classifier, L-MAC decoder, ...), keyed by configuration.

A trained module is stored as ``<cache_dir>/<kind>-<key>.pt`` (a state dict) with
``<kind>-<key>.json`` beside it (the configuration and training log), where ``key``
is a hash of the configuration: a second run with the same configuration reuses
the checkpoint, a changed setting trains anew (DESIGN.md, "The harness"). A
configuration names what the weights depend on by content: the training audio, the
noise clips and any given checkpoint enter it as SHA-256 digests of their bytes
(``file_digests``), so that other audio or weights under the same names train anew.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from benchmark import distributed
from datasets import roots


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
            digest = hashlib.sha256()
            with open(path, "rb") as file:
                for chunk in iter(lambda: file.read(1 << 20), b""):
                    digest.update(chunk)
            entry = {"size": status.st_size, "mtime_ns": status.st_mtime_ns, "sha256": digest.hexdigest()}
            known[name], changed = entry, True
        digests.append(entry["sha256"])
    if changed and cache_dir:
        record.parent.mkdir(parents=True, exist_ok=True)
        tmp = record.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, record)
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


def cached_training(
    module: nn.Module, kind: str, config: dict[str, Any], cache_dir: Path, train: Callable[[nn.Module], dict]
) -> str:
    """Load ``module``'s weights from the cache, or train it with ``train(module)`` and store them.

    Args:
        module: freshly built module; filled in place.
        kind: file-name prefix ("classifier", "lmac", ...).
        config: everything the trained weights depend on.
        cache_dir: checkpoint directory (created if missing).
        train: trains ``module`` in place and returns a JSON-able training log.
    Returns:
        the configuration key (to chain into dependants' configurations).

    In a torchrun launch every rank calls this together. A checkpoint of the same configuration
    trained by that many processes, or else by one process, is loaded; otherwise all ranks train
    (``train`` uses DDP), rank 0 writes the checkpoint under a key that records the world size, and
    the others wait for it and load it.
    """
    current = distributed.ranks()
    single_key = config_key(config)
    if current.world_size > 1:  # DDP training gives other weights than one process: its own key
        config = {**config, "ddp_world_size": current.world_size}
    key = config_key(config)
    for known in dict.fromkeys([key, single_key]):
        if (Path(cache_dir) / f"{kind}-{known}.pt").exists():
            load_state(module, Path(cache_dir) / f"{kind}-{known}.pt")
            return known
    path = Path(cache_dir) / f"{kind}-{key}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    log = train(module)  # on every rank of a torchrun launch, together (DDP)
    if current.leader:
        tmp = path.with_suffix(".tmp")
        torch.save(module.state_dict(), tmp)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps({"config": config, "log": log}, indent=1, default=str))
    distributed.barrier(current)
    if not current.leader:
        load_state(module, path)  # the others use rank 0's weights
    return key
