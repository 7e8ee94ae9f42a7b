"""Command line of the benchmark: ``python run_benchmark.py --dataset esc50 --setting ood``."""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import tempfile
import traceback
from dataclasses import replace
from pathlib import Path

import torch

from benchmark import distributed
from benchmark.bench import run_bench
from benchmark.checkpoints import default_cache_dir
from benchmark.config import RunConfig
from benchmark.explain import explain_file
from benchmark.frontend import DOMAINS
from benchmark.harness import run
from benchmark.listening_results import write_summary
from benchmark.options import COMMANDS, build_parser
from benchmark.profiles import default_profile
from benchmark.reference_models import ship_models
from benchmark.report import build_report
from benchmark.sanity import run_sanity
from benchmark.seeds import run_seeds
from benchmark.selection import select_lmac_l1
from benchmark.speechbrain_import import speechbrain_paper_checkpoints
from classifiers import classifier_class
from datasets import roots
from datasets.audio import load_clip
from datasets.download import download
from datasets.sources import open_dataset
from datasets.split import FoldPlan
from methods import available_methods
from methods.base import InvalidExplanationError, control_methods, parse_hyperparameter


class UsageError(ValueError):
    """A command-line value is out of range or names something that is not there; the
    message names the flag and the fix (exit code 2)."""


def _number_list(text: str, flag: str, low: float, high: float) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.2,0.4") from None
    if not values or not all(low <= v <= high for v in values):
        raise UsageError(f"{flag} {text!r}: expected numbers in [{low}, {high}]")
    return values


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or not all(0 <= s < 2**32 for s in seeds):
        raise UsageError(f"--seeds {text!r}: expected at least two different seeds in 0 … 2**32 − 1")
    return seeds


def _check_device(text: str) -> None:
    try:
        device = torch.device(text)
    except RuntimeError:
        raise UsageError(f"--device {text!r}: not a torch device; use cpu or cuda (cuda:N)") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"--device {text}: no such CUDA device is available here "
                         f"({torch.cuda.device_count()} found); use --device cpu")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text}: only cpu and cuda are supported")


def _check_path(path: str | None, flag: str, folder: bool) -> None:
    if path and not (Path(path).is_dir() if folder else Path(path).exists()):
        kind = "folder" if folder else "file"
        raise UsageError(f"{flag} {path}: no such {kind}; pass an existing {kind}")


def check_writable_folder(path: str, flag: str) -> None:
    """Raise ``UsageError`` unless ``path`` is a folder this process can write in, or can be made as one:
    an existing file, a file on the way, or a folder without write permission is named with ``flag``."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise UsageError(f"{flag} {path}: a file, not a folder; pass a folder (it is created if missing)")
    existing = next((p for p in (target, *target.parents) if p.exists()), Path("."))
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so the folder cannot be made; pass another path")
    try:  # a real write: permissions, a read-only mount or an immutable folder all show here
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot write in {existing} ({error.strerror}); pass a folder you can "
                         "write to") from None


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Check every option and build the run's configuration; nothing is read but the
    named paths' existence, nothing trains.

    Raises:
        UsageError: an option out of range, an unknown method / domain / --set keyword or
            value, an unavailable device, a missing file or folder (the message names the flag).
    """
    for module in args.imports:
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UsageError(f"--import {module}: cannot import it ({error}); put {module}.py in the working "
                             "directory or on PYTHONPATH") from None
        except Exception as error:  # the user's module raised while importing: its file and last line
            where = traceback.extract_tb(error.__traceback__)[-1]
            raise UsageError(f"--import {module}: importing it raised {type(error).__name__}: {error} "
                             f"({where.filename}, line {where.lineno}); fix the module") from None
    for flag in ("classifier", "out", "cache_dir", "data_root", "noise_dir", "speech_dir", "classifier_checkpoint",
                 "lmac_checkpoint", "lmac_mel_checkpoint", "folds", "data_folds"):
        value = getattr(args, flag, None)
        if value is not None and not value.strip():
            raise UsageError(f"--{flag.replace('_', '-')} is empty; give a value or leave the option out")
    if not args.classifier.startswith("hf:"):
        try:
            classifier_class(args.classifier.strip())
        except ValueError as error:
            raise UsageError(str(error)) from None
    methods = (available_methods() if args.methods == "all"
               else [m.strip() for m in args.methods.split(",") if m.strip()])
    if not methods:
        raise UsageError(f"--methods {args.methods!r}: name at least one method; registered: "
                         f"{', '.join(available_methods())}")
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise UsageError(f"--methods: unknown method(s) {', '.join(unknown)}; registered: "
                         f"{', '.join(available_methods())}")
    controls = [] if getattr(args, "controls", "none") == "none" else [
        c.strip() for c in args.controls.split(",") if c.strip()]
    if any(c not in control_methods() for c in controls):
        raise UsageError(f"--controls {args.controls!r}: choose from {', '.join(control_methods())}, or none")
    for flag, items in (("--methods", methods), ("--controls", controls)):
        repeated = sorted({m for m in items if items.count(m) > 1})
        if repeated:
            raise UsageError(f"{flag}: {', '.join(repeated)} named twice; name each method once")
    methods += [c for c in controls if c not in methods]
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    if not domains or any(d not in DOMAINS for d in domains):
        raise UsageError(f"--domains {args.domains!r}: choose from {', '.join(DOMAINS)}")
    if len(set(domains)) != len(domains):
        raise UsageError(f"--domains {args.domains!r}: a domain named twice; name each once")
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be a positive integer")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed {args.seed}: must be in 0 … 2**32 − 1")
    for flag, text, plan in (("--folds", args.folds, "{}"), ("--data-folds", args.data_folds, "{}:1:1:1")):
        try:
            if text is not None:
                FoldPlan.parse(plan.format(text))
        except ValueError as error:
            raise UsageError(f"{flag}: {error}") from None
    _check_device(args.device)
    profile = args.profile or default_profile(args.device)
    condition = args.setting + (f"-{args.contamination}" if args.setting == "ood" else "")
    out = args.out or os.path.join("results", "runs", f"{args.dataset}-{condition}-{profile}")
    cache_dir = args.cache_dir or str(default_cache_dir())
    check_writable_folder(out, "--out")
    check_writable_folder(cache_dir, "--cache-dir")
    _check_path(args.classifier_checkpoint, "--classifier-checkpoint", folder=False)
    _check_path(args.lmac_checkpoint, "--lmac-checkpoint", folder=False)
    _check_path(args.lmac_mel_checkpoint, "--lmac-mel-checkpoint", folder=False)
    _check_path(args.noise_dir, "--noise-dir", folder=True)
    _check_path(args.speech_dir, "--speech-dir", folder=True)
    if args.setting == "id" and not args.noise_dir:
        raise UsageError("--setting id mixes each clip with a noise recording: pass --noise-dir DIR")
    if args.setting == "ood" and args.contamination == "speech" and not args.speech_dir:
        raise UsageError("--contamination speech needs speech recordings: pass --speech-dir DIR")
    if not 0 <= args.lmac_ft_guidance:
        raise UsageError(f"--lmac-ft-guidance {args.lmac_ft_guidance}: must be ≥ 0")
    if not -1 <= args.lmac_ft_cth <= 1:
        raise UsageError(f"--lmac-ft-cth {args.lmac_ft_cth}: a cosine similarity, must be in [-1, 1]")

    options: dict[str, dict] = {}
    if "l2i" in methods:
        options["l2i"] = {"rth": _number_list(args.l2i_rth, "--l2i-rth", 0.0, 1.0)}
    if "lmac-ft" in methods:
        options["lmac-ft"] = {"guidance": args.lmac_ft_guidance, "cth": args.lmac_ft_cth}
    for keyword, path in (("checkpoint", args.lmac_checkpoint), ("mel_checkpoint", args.lmac_mel_checkpoint)):
        for name in ("lmac", "lmac-ft"):
            if path and name in methods:
                options.setdefault(name, {})[keyword] = path
    for method, key, text in args.method_options:
        if method in available_methods() and method not in methods:
            raise UsageError(f"--set {method}.{key}: {method} is not among --methods ({', '.join(methods)}); add it "
                             "there or drop this --set")
        try:
            options.setdefault(method, {})[key] = parse_hyperparameter(method, key, text)
        except ValueError as error:
            raise UsageError(str(error)) from None
    if args.profile is None and profile == "paper":
        print("profile: paper (the default on a GPU; pass --profile cpu for the small models)")
    return RunConfig(
        dataset=args.dataset, setting=args.setting, contamination=args.contamination, data_root=args.data_root,
        folds=args.folds, data_folds=args.data_folds, classifier_checkpoint=args.classifier_checkpoint,
        noise_dir=args.noise_dir, speech_dir=args.speech_dir,
        classifier=args.classifier.strip(), methods=methods, methods_all=args.methods == "all",
        method_options=options, imports=args.imports, domains=domains, profile=profile, limit=args.limit,
        out=out, cache_dir=cache_dir,
        device=distributed.device_of(args.device, distributed.ranks()), seed=args.seed,
        batch_size=args.batch_size, ad_softmax_twice=not args.ad_single_softmax,
        peak_normalisation=args.peak_normalisation, save_audio=args.save_audio, resume=args.resume,
        curves=getattr(args, "curves", False), precision=args.precision, retrain=args.retrain)


def bench(args: argparse.Namespace) -> str:
    """``run_benchmark.py bench``: ``benchmark.bench.run_bench`` with the parsed options."""
    if args.paper_size:
        classes = len(open_dataset(args.dataset, args.data_root, args.seed, args.folds).class_names)
        folder = Path(args.cache_dir or default_cache_dir()) / f"speechbrain-paper-size-{classes}-classes"
        speechbrain_paper_checkpoints(folder, classes)
        args.classifier_checkpoint, args.lmac_checkpoint = str(folder), str(folder / "psi_model.ckpt")
    if args.repeats < 1:
        raise UsageError(f"--repeats {args.repeats}: must be a positive integer")
    name = "bench-paper-size" if args.paper_size else f"bench-{args.profile or default_profile(args.device)}"
    args.out = args.out or os.path.join("results", "runs", name)
    return run_bench(config_from_args(args), [m.strip() for m in args.per_sample_methods.split(",")], args.repeats)


def main(argv: list[str] | None = None) -> int:
    """``run_benchmark.py [options]`` runs the benchmark; ``run_benchmark.py explain FILE`` explains one
    file; ``run_benchmark.py bench`` measures the harness's speed; ``run_benchmark.py select-lmac-l1``
    chooses the CPU profile's L-MAC L1 weight on the validation part; ``run_benchmark.py sanity``
    runs the model-parameter randomisation check; ``run_benchmark.py report RUN_DIR`` builds a run's
    listening report and test; ``run_benchmark.py listening-results CSV...`` summarises the ratings;
    ``run_benchmark.py download esc50|us8k`` fetches a dataset; ``run_benchmark.py reference-models
    RUN_DIR...`` ships the models that runs used (maintainers).

    Returns the exit code: 0; 2 with a one-line message and no traceback for a bad option, missing or
    unreadable data, folder or checkpoint, bad audio, an invalid map, or an --out holding other
    results; 130 when interrupted.
    """
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in COMMANDS else "run"
    try:
        args = build_parser(command).parse_args(argv if command == "run" else argv[1:])
    except SystemExit as exit_:  # argparse has printed its message (code 2) or the help (code 0)
        return int(exit_.code or 0)
    current = distributed.ranks()
    threads = getattr(args, "threads", None)
    try:
        if threads is not None and threads < 1:
            raise UsageError(f"--threads {threads}: must be a positive integer")
        torch.set_num_threads(threads or distributed.threads_per_process())
        if current.world_size > 1 and command != "run":
            raise UsageError(f"run_benchmark.py {command} runs in one process; torchrun shards only the benchmark run "
                             "itself: start it with plain python")
        if command == "explain":
            args.methods = args.method
            args.out = args.out or "explanations"
            load_clip(args.audio, peak_normalisation=args.peak_normalisation)  # reported before anything trains
        if command == "bench":
            print(bench(args))
        elif command == "select-lmac-l1":
            args.out = args.out or os.path.join("results", "runs", f"lmac-l1-selection-{args.profile or 'cpu'}")
            if not 0 <= args.margin <= 1:
                raise UsageError(f"--margin {args.margin}: a drop of Fid-In, must be in [0, 1]")
            print(select_lmac_l1(config_from_args(args), _number_list(args.grid, "--grid", 0.0, float("inf")),
                                 args.margin))
        elif command == "download":
            env, name = ("ESC50_ROOT", "esc50") if args.dataset == "esc50" else ("US8K_ROOT", "UrbanSound8K")
            root = Path(args.data_root or os.environ.get(env) or roots.default_cache_dir(name)).expanduser()
            check_writable_folder(str(root.parent), "--data-root")
            download(args.dataset, root, args.url, args.checksum)
            print(f"unpacked {args.dataset} into {root}\nnext: python run_benchmark.py --dataset {args.dataset} "
                  f"--data-root {shlex.quote(str(root))}")
        elif command == "reference-models":
            print(f"wrote {ship_models([Path(d) for d in args.run_dirs])}")
        elif command == "listening-results":
            check_writable_folder(args.out, "--out")
            print(write_summary(args.csv, Path(args.out)))
        elif command == "report":
            if args.samples < 1:
                raise UsageError(f"--samples {args.samples}: must be a positive integer")
            print(f"wrote {build_report(Path(args.run_dir), args.samples, args.seed)}")
        elif command == "sanity":
            profile = args.profile or default_profile(args.device)
            args.out = args.out or os.path.join("results", "runs", f"sanity-{profile}")
            print(run_sanity(config_from_args(args)))
        elif command == "explain":
            print(explain_file(config_from_args(args), args.audio))
        else:
            config = replace(config_from_args(args), command=shlex.join(["python", "run_benchmark.py", *argv]))
            args.out = config.out  # for the message on Ctrl-C
            seeds = _seed_list(args.seeds) if args.seeds else None
            distributed.start(config.device)
            markdown = run_seeds(config, seeds) if seeds else run(config)
            if markdown is not None:
                print(markdown)
    except (OSError, ValueError, InvalidExplanationError) as error:  # bad option or input; --out taken
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if command != "run":
            raise
        print(f"\ninterrupted: the finished samples are in {args.out}/unfinished/"
              "per_sample.csv and the earlier results are untouched; rerun with --resume to continue", file=sys.stderr)
        return 130
    finally:
        distributed.stop()
    return 0
