"""``run_benchmark.py reference-models RUN_DIR...``: copy the trained parts that finished runs used from
the checkpoint cache into the shipped reference models (``foundation.checkpoints.REFERENCE_MODELS``) and
list each in its ``manifest.json``: file, kind, key, SHA-256, size, the command of the run whose
configuration trains it, the code version that trained it (from the training record beside the
weights, else the run's), the training audio's content key, the training seed, the profile and
the classifier's validation accuracy. For the maintainers of the reference models; the CPU profile only.
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from foundation.checkpoints import REFERENCE_MODELS
from foundation.files import sha256_of


def ship_models(run_dirs: list[Path], reference_dir: Path = REFERENCE_MODELS) -> Path:
    """Add the models of each run in ``run_dirs`` (its ``run.json``'s ``models``) to ``reference_dir``.

    Returns:
        the manifest's path.
    Raises:
        ValueError: a run folder without run.json, a run of another profile than cpu, or a model
            whose file is gone from the cache.
    """
    manifest_path = reference_dir / "manifest.json"
    entries = {e["file"]: e for e in json.loads(manifest_path.read_text())["models"]} if manifest_path.is_file() else {}
    reference_dir.mkdir(parents=True, exist_ok=True)
    for run_dir in run_dirs:
        try:
            record = json.loads((Path(run_dir) / "run.json").read_text())
        except (OSError, ValueError):
            raise ValueError(f"{run_dir}: no readable run.json; pass the folder of a finished run") from None
        config = record["config"]
        if config["profile"] != "cpu":
            raise ValueError(f"{run_dir}: a run of the {config['profile']} profile; only the cpu profile is shipped")
        for model in record.get("models", []):
            source = Path(model["path"])
            name = f"{model['kind']}-{model['key']}.pt"
            if model["source"] == "shipped" or name in entries:
                continue
            if not source.is_file() or sha256_of(source) != model["sha256"]:
                raise ValueError(f"{source}: missing or changed since {run_dir} used it; run it again first")
            shutil.copyfile(source, reference_dir / name)
            shutil.copyfile(source.with_suffix(".json"), (reference_dir / name).with_suffix(".json"))
            seed = config["seed"] if config.get("training_seed") is None else config["training_seed"]
            trained_with = json.loads(source.with_suffix(".json").read_text()).get("trained_with", record["versions"])
            entries[name] = {
                "file": name, "kind": model["kind"], "key": model["key"],
                "classifier": config.get("classifier", "cnn14"),
                "sha256": model["sha256"],
                "bytes": source.stat().st_size, "command": config.get("command", ""),
                "code": trained_with["code"], "training_audio": record["audio"]["train"],
                "noise_audio": record["audio"]["noise"], "training_seed": seed, "profile": config["profile"],
                "classifier_valid_accuracy": record["classifier"].get("valid_accuracy"),
                "platform": trained_with["platform"], "torch": trained_with["torch"]}
    manifest = {"about": "Reference models of the CPU profile, trained on the shared ESC-50 copy (fold 4, split "
                         "by recording); a run whose configuration and data content match one uses it. Each file "
                         "is a state dict; <file>.json beside it holds its configuration and training log.",
                "models": sorted(entries.values(), key=lambda e: e["file"])}
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest_path


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py reference-models``."""
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py reference-models",
        description="Copy the classifier and trainable explainers that finished runs of the cpu profile used "
                    "from the checkpoint cache into results/reference-models/ and list them in its "
                    "manifest.json (SHA-256, command, code version, data content key, training seed, "
                    "validation accuracy). For the maintainers of the shipped models.")
    parser.add_argument("run_dirs", nargs="+", help="finished run folders (run.json lists their models)")
    return parser


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py reference-models RUN_DIR...``: ``ship_models`` of the run folders."""
    return f"wrote {ship_models([Path(d) for d in args.run_dirs])}"
