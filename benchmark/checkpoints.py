"""Checkpoint cache of trained parts (classifier, L-MAC decoder, ...), keyed by configuration.

A trained module is stored as ``<cache_dir>/<kind>-<key>.pt`` (a state dict) with
``<kind>-<key>.json`` beside it (the configuration and training log), where ``key``
is a hash of the configuration: a second run with the same configuration reuses
the checkpoint, a changed setting trains anew (DESIGN.md, "The harness").
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from datasets import roots


def config_key(config: dict[str, Any]) -> str:
    """16-hex-digit SHA-256 of the configuration's canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def default_cache_dir() -> Path:
    """``$LMAC_BENCHMARK_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/lmac-benchmark/checkpoints``."""
    if os.environ.get("LMAC_BENCHMARK_CACHE"):
        return Path(os.environ["LMAC_BENCHMARK_CACHE"])
    return roots.default_cache_dir("checkpoints")


def load_state(module: nn.Module, path: Path) -> None:
    """Load a state dict safely (``weights_only=True``) into ``module``.

    Raises:
        ValueError: a tensor's shape does not fit (the message names it and the fix).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
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
    """
    key = config_key(config)
    path = Path(cache_dir) / f"{kind}-{key}.pt"
    if path.exists():
        load_state(module, path)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    log = train(module)
    tmp = path.with_suffix(".tmp")
    torch.save(module.state_dict(), tmp)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps({"config": config, "log": log}, indent=1, default=str))
    return key
