"""A run's identity: what its per-sample rows depend on, and how two runs differ (docs/running.md, "Resume").

The identity has four parts: ``settings`` (every option that changes a row, paths left out: the data
enter by content), ``limit`` (how many evaluation clips), ``data`` (the SHA-256 of every file the run
read, by part, and the content keys of the parts with their labels) and ``models`` (the SHA-256 of the
weights of every trained part used). ``--resume`` continues only a run whose identity is the same (a
larger ``--limit`` extends it); ``differences`` names what differs, as the option or the file.
"""
from __future__ import annotations

import os
from pathlib import Path

from benchmark.config import RunConfig
from benchmark.pipeline import EvaluationSamples
from datasets.folder import recordings
from datasets.sources import AudioData
from foundation.checkpoints import file_digests

PATH_SETTINGS = ("data_root", "noise_dir", "speech_dir", "classifier_checkpoint")
"""Options that name where inputs are; what they hold enters the identity by content (``data``, ``models``)."""

FLAGS = {"method_options": "--set", "imports": "--import", "ad_softmax_twice": "--ad-single-softmax",
         "training_seed": "--seeds", "methods": "--methods / --controls", "batched_draws": "--batch-size on CUDA"}
"""The option that sets a field of ``settings``, where it is not ``--`` and the field's name with dashes."""


def run_settings(config: RunConfig) -> dict:
    """``config.identity()`` without the paths of ``PATH_SETTINGS``; checkpoint paths given with ``--set`` are
    resolved, so that two spellings of one file are one setting."""
    settings = {k: v for k, v in config.identity().items() if k not in PATH_SETTINGS}
    settings["method_options"] = {
        method: {key: str(Path(value).expanduser().resolve()) if key.endswith("checkpoint") and value else value
                 for key, value in options.items()}
        for method, options in config.method_options.items()}
    return settings


def input_files(data: AudioData, evaluation: EvaluationSamples, noise_dir: str | None) -> dict[str, list[Path]]:
    """The files whose bytes a run's rows depend on, by part: training, validation and evaluated clips (for the
    controlled dataset their backgrounds, ``AudioData.provenance``), the contaminants mixed in, the noise
    recordings (``--noise-dir``)."""
    split = data.split
    evaluated = split.evaluation.iloc[: max(s.base_index for s in evaluation.samples) + 1]
    mixed = {s.contaminant_file for s in evaluation.samples if s.contamination not in ("clean", "white_noise")}
    pool = split.contaminant_pool[split.contaminant_pool["filename"].isin(mixed)]
    parts = {"training clip": data.provenance(split.train)[0], "validation clip": data.provenance(split.valid)[0],
             "evaluation clip": data.provenance(evaluated)[0],
             "contaminant": data.provenance(pool)[0] if len(pool) else [Path(name) for name in sorted(mixed)]}
    if noise_dir:
        parts["noise recording"] = recordings(noise_dir, "noise recordings", "--noise-dir")
    return parts


def data_identity(parts: dict[str, list[Path]], root: Path, keys: dict[str, str | None],
                  cache_dir: Path | None) -> dict:
    """The ``data`` part: for each part (e.g. "training clip") the SHA-256 of each of its files, named relative
    to the data root ``root`` when inside it, and ``keys``, the parts' content keys (audio, labels and
    normalisation, ``foundation.checkpoints.content_key``)."""
    root = Path(os.path.abspath(root))

    def name(path: Path) -> str:  # links are not followed: a clip is named where the dataset lists it
        absolute = Path(os.path.abspath(path))
        return str(absolute.relative_to(root)) if absolute.is_relative_to(root) else str(absolute)

    files = {part: dict(zip(map(name, paths), file_digests(paths, cache_dir))) for part, paths in parts.items()}
    return {"files": files, "keys": keys}


def model_identity(models: list[dict]) -> dict[str, str]:
    """The ``models`` part: ``<kind>-<key>.pt`` → SHA-256 of the weights, from ``cached_training``'s entries."""
    return {f"{m['kind']}-{m['key']}.pt": m["sha256"] for m in models}


def _flag(field: str) -> str:
    return FLAGS.get(field, f"--{field.replace('_', '-')}")


def _files_differ(part: str, old: dict[str, str], new: dict[str, str], extends: bool) -> list[str]:
    changed = [n for n in new if n in old and old[n] != new[n]]
    added, removed = [] if extends else [n for n in new if n not in old], [n for n in old if n not in new]
    said = [f"{part} {n} changed (SHA-256 {old[n][:12]}… then, {new[n][:12]}… now)" for n in changed[:3]]
    said += [f"{part} {n} is new" for n in added[:3]] + [f"{part} {n} is gone" for n in removed[:3]]
    hidden = len(changed) + len(added) + len(removed) - len(said)
    return said + ([f"{hidden} more {part}s"] if hidden > 0 else [])


def differences(old: dict, new: dict, parts: tuple[str, ...], extends: bool = False) -> list[str]:
    """What differs between two identities in ``parts`` ("settings" and / or "data"), each as a phrase naming the
    option or the file, e.g. "--seed (0 then, 1 now)", "training clip audio/1-1.wav changed (…)"; [] when they
    agree. ``extends``: ``new`` evaluates more clips than ``old`` (a larger ``--limit``), so files that only
    ``new`` read do not count. (``--limit`` is compared by ``covers``, the models by
    ``foundation.checkpoints.cached_training``.)"""
    said: list[str] = []
    if "settings" in parts:
        before, now = old.get("settings", {}), new.get("settings", {})
        said += [f"{_flag(k)} ({before.get(k)!r} then, {now.get(k)!r} now)" for k in sorted(set(before) | set(now))
                 if before.get(k) != now.get(k)]
    if "data" in parts:
        before, now = old.get("data", {}), new.get("data", {})
        files = [phrase for part in sorted(set(before.get("files", {})) | set(now.get("files", {})))
                 for phrase in _files_differ(part, before.get("files", {}).get(part, {}),
                                             now.get("files", {}).get(part, {}), extends)]
        keys = [k for k in sorted(set(before.get("keys", {})) | set(now.get("keys", {})))
                if before.get("keys", {}).get(k) != now.get("keys", {}).get(k)]
        said += files or [f"the {k} part's labels or content (metadata CSV)" for k in keys]
    return said


def covers(limit: int | None, earlier: int | None) -> bool:
    """Whether a run with ``--limit limit`` evaluates every clip of one with ``earlier`` (None: all clips)."""
    return limit is None or (earlier is not None and limit >= earlier)
