"""From parsed command-line options to a run's configuration: ``config_from_args`` checks every value
(ranges, names, paths, devices, methods, classifiers, ``--set`` and its aliases) before anything is
read or trained, and raises ``UsageError`` naming the flag and the fix (exit code 2)."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import traceback
import types
from pathlib import Path

import torch

from benchmark.config import RunConfig
from benchmark.output_folder import check_location, committed_results
from benchmark.robustness import robustness_options
from classifiers import classifier_class
from classifiers.clap import check_template
from datasets import roots
from datasets.sources import shadowed_hugging_face
from datasets.split import FoldPlan
from foundation import distributed
from foundation.checkpoints import default_cache_dir
from foundation.frontend import DOMAINS
from foundation.profiles import default_profile
from methods import available_methods
from methods.registry import control_methods, parse_hyperparameter


class UsageError(ValueError):
    """A command-line value is out of range or names something that is not there; the
    message names the flag and the fix (exit code 2)."""


def number_list(text: str, flag: str, low: float, high: float) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.2,0.4") from None
    if not values or not all(low <= v <= high for v in values):
        raise UsageError(f"{flag} {text!r}: expected numbers in [{low}, {high}]")
    return values


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected comma-separated integers, e.g. 0,1,2") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or not all(0 <= s < 2**32 for s in seeds):
        raise UsageError(f"--seeds {text!r}: expected at least two different seeds in 0 … 2**32 − 1")
    return seeds


def _aliases(args: argparse.Namespace) -> list[tuple[str, object, str, str]]:
    """(flag, value, method, keyword) of each option that is an alias of ``--set METHOD.KEYWORD=VALUE``."""
    return [("--l2i-rth", args.l2i_rth, "l2i", "rth"),
            ("--lmac-ft-guidance", args.lmac_ft_guidance, "lmac-ft", "guidance"),
            ("--lmac-ft-cth", args.lmac_ft_cth, "lmac-ft", "cth"),
            *((flag, path, method, keyword) for method in ("lmac", "lmac-ft") for flag, path, keyword in (
                ("--lmac-checkpoint", args.lmac_checkpoint, "checkpoint"),
                ("--lmac-mel-checkpoint", args.lmac_mel_checkpoint, "mel_checkpoint")))]


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


def check_out_location(out: str, dataset: str, data_root: str | None, cache_dir: str, *recordings: str | None) -> None:
    """Raise ``UsageError`` when ``--out`` is ``/`` or is, contains or lies inside the data root (``--data-root``,
    or where the dataset is looked up without it), ``--cache-dir``, a folder of recordings (``--noise-dir``,
    ``--speech-dir``) or one of the repository's committed ``results/`` folders (``benchmark.output_folder``)."""
    protected = [(f"the data root ({'--data-root' if data_root else 'where --dataset ' + dataset + ' is looked up'})",
                  Path(data_root or roots.default_data_root(dataset)))] if data_root or dataset != "folder" else []
    protected += [("the checkpoint cache (--cache-dir)", Path(cache_dir))]
    protected += [("a folder of recordings (--noise-dir, --speech-dir)", Path(f)) for f in recordings if f]
    protected += [("the repository's committed results", folder) for folder in committed_results()]
    try:
        check_location(out, protected)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _names_a_file(module: str) -> bool:
    return module.endswith(".py") or "/" in module or os.sep in module


def import_user_module(module: str) -> types.ModuleType:
    """Import a user's module that registers explainers or classifiers (``--import``), wherever a run's
    imports are imported: a module name (``my_explainer``, in the repository's folder or on PYTHONPATH) or the
    path of a .py file (``./my_explainer.py``, ``some/dir/my_explainer.py``), loaded under its stem name and
    registered in ``sys.modules``; a file imported before is not run again.

    Returns:
        the module.
    Raises:
        UsageError: no such module or file, a path that is not a .py file or whose stem names another
            module, or an exception raised while importing (its file and line; code that wanted Hugging
            Face ``datasets`` and got this repository's package is told the way out).
    """
    flag = f"--import {module}"
    if not _names_a_file(module):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as error:
            if error.name and f"{module}.".startswith(f"{error.name}."):
                raise UsageError(f"{flag}: no module {error.name} in the repository's folder or on PYTHONPATH; pass "
                                 f"the path of its file (--import path/to/{module.rsplit('.', 1)[-1]}.py) or put its "
                                 "folder on PYTHONPATH") from None
            raise UsageError(_import_failure(flag, error)) from None
        except Exception as error:  # the user's module raised while importing
            raise UsageError(_import_failure(flag, error)) from None
    path = Path(module).expanduser().resolve()
    if not path.is_file() or path.suffix != ".py":
        what = "a folder" if path.is_dir() else "not a .py file" if path.exists() else f"no such file ({path})"
        raise UsageError(f"{flag}: {what}; pass the path of a .py file, or a module name on PYTHONPATH")
    name = path.stem
    if not name.isidentifier():
        raise UsageError(f"{flag}: {name!r} is not a Python module name; rename the file (letters, digits, _)")
    loaded = sys.modules.get(name)  # "" below: no module of that name; None: one without a file
    origin = getattr(loaded, "__file__", None) if loaded else getattr(importlib.util.find_spec(name), "origin", "")
    same = bool(origin) and Path(origin).resolve() == path
    if loaded and same:
        return loaded
    if origin != "" and not same:
        raise UsageError(f"{flag}: the module name {name} is taken ({origin or 'a built-in module or a package'}); "
                         f"rename {path.name}")
    spec = importlib.util.spec_from_file_location(name, path)
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[name] = loaded
    try:
        spec.loader.exec_module(loaded)
    except Exception as error:
        del sys.modules[name]
        raise UsageError(_import_failure(flag, error)) from None
    return loaded


def _import_failure(flag: str, error: Exception) -> str:
    """The message of an exception raised while a user's module was imported: its type, text, file and line."""
    text, frame = str(error), traceback.extract_tb(error.__traceback__)[-1]
    where = f"{frame.filename}, line {frame.lineno}"
    if isinstance(error, SyntaxError):  # its text holds the file's name, its traceback ends in importlib
        text, where = error.msg, f"{error.filename}, line {error.lineno}"
    clash = shadowed_hugging_face(error)
    fix = clash or ("install it or fix the module" if isinstance(error, ModuleNotFoundError) else "fix the module")
    return f"{flag}: importing it raised {type(error).__name__}: {text} ({where}); {fix}"


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """Check every option and build the run's configuration; nothing is read but the
    named paths' existence, nothing trains.

    Raises:
        UsageError: an option out of range, an unknown method / domain / --set keyword or
            value, an unavailable device, a missing file or folder (the message names the flag).
    """
    modules = [import_user_module(module) for module in args.imports]
    # a file's resolved path is recorded, so that ``report`` imports the same file from any working directory
    args.imports = [str(Path(loaded.__file__).resolve()) if _names_a_file(module) else module
                    for module, loaded in zip(args.imports, modules)]
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
    try:
        check_template(getattr(args, "prompt_template", None), args.classifier.strip())
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
    try:
        robustness = robustness_options(args)
    except ValueError as error:
        raise UsageError(str(error)) from None
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
    check_out_location(out, args.dataset, args.data_root, cache_dir, args.noise_dir, args.speech_dir)
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
    if getattr(args, "shuffle_labels", False) and args.dataset != "controlled":
        raise UsageError("--shuffle-labels is the control of the reliance check of --dataset controlled; use it with "
                         "--dataset controlled")
    options: dict[str, dict] = {}
    for flag, value, method, key in _aliases(args):  # documented aliases of --set, for the methods that run
        if value is not None and method in methods:
            text = f"[{value}]" if isinstance(value, str) and "," in value else str(value)
            try:
                options.setdefault(method, {})[key] = parse_hyperparameter(method, key, text)
            except ValueError as error:
                raise UsageError(f"{flag} {value!r} (an alias of --set {method}.{key}): "
                                 f"{str(error).split(': ', 1)[1]}") from None
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
        curves=getattr(args, "curves", False) or (hasattr(args, "curves") and args.dataset == "controlled"),
        precision=args.precision, retrain=args.retrain, shuffle_labels=getattr(args, "shuffle_labels", False),
        prompt_template=getattr(args, "prompt_template", None), **robustness)
