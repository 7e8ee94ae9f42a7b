"""Command line of the benchmark: ``python run_benchmark.py --dataset esc50 --setting ood``."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

import torch

from benchmark.bench import run_bench, speechbrain_paper_checkpoints
from benchmark.checkpoints import default_cache_dir
from benchmark.explain import explain_file
from benchmark.frontend import DOMAINS
from benchmark.harness import RunConfig, run
from benchmark.profiles import PROFILES, default_profile
from benchmark.selection import select_lmac_l1
from datasets.audio import PEAK_NORMALISATIONS, AudioError, load_clip
from datasets.sources import DATASETS, open_dataset
from datasets.split import FoldPlan
from methods import available_methods
from methods.base import InvalidExplanationError, parse_hyperparameter

COMMANDS = ("explain", "bench", "select-lmac-l1")


class UsageError(ValueError):
    """A command-line value is out of range or names something that is not there; the
    message names the flag and the fix (exit code 2)."""


def _method_option(text: str) -> tuple[str, str, str]:
    """``METHOD.KEY=VALUE`` → (method, key, value text); the value is converted later, by
    the type of the method's keyword (``methods.base.parse_hyperparameter``)."""
    try:
        target, value = text.split("=", 1)
        method, key = target.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE, got {text!r}") from None
    return method.strip(), key.strip(), value


def build_parser(command: str = "run") -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py`` (command "run"), ``run_benchmark.py explain FILE``
    ("explain"), ``run_benchmark.py bench`` ("bench") or ``run_benchmark.py select-lmac-l1``."""
    if command == "bench":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py bench",
            description="Speed of the harness on real clips: per method samples/s, time in model passes vs the rest "
                        "(harness overhead), peak memory, and the batched harness against a per-sample loop with the "
                        "same models (speed-up, largest per-sample metric difference). Writes bench.csv and bench.md "
                        "to --out (default results/runs/bench-<profile>).")
        parser.add_argument("--methods", default="saliency,smoothgrad,integrated-gradients,guided-backprop,shap,"
                                                 "gradcam,guided-gradcam,lmac,all-ones",
                            help="comma-separated explainers, or 'all' (default: all but the trained l2i and lmac-ft)")
        parser.add_argument("--per-sample-methods", default="saliency,gradcam,lmac,all-ones",
                            help="methods also timed in the per-sample loop, or 'all' (default: the cheap ones)")
        parser.add_argument("--limit", type=int, default=16,
                            help="evaluation clips (default 16: 32 samples of the ood condition)")
        parser.add_argument("--batch-size", type=int, default=16, help="batch size of the harness (default 16)")
        parser.add_argument("--domains", default="listenable", help="settings: listenable and/or mel")
        parser.add_argument("--repeats", type=int, default=3, help="each timing is the fastest of this many runs")
        parser.add_argument("--paper-size", action="store_true",
                            help="use seeded paper-size SpeechBrain checkpoints (CNN14 width 64, L-MAC decoder dim "
                                 "2048), written to the cache on first use, as --classifier-checkpoint and "
                                 "--lmac-checkpoint")
        add_common_options(parser)
        parser.set_defaults(setting="ood", contamination="mixtures", speech_dir=None, l2i_rth="0.2",
                            save_audio=False, ad_single_softmax=False, resume=False)
        return parser
    if command == "select-lmac-l1":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py select-lmac-l1",
            description="Choose L-MAC's L1 weight λ_1 on the training and validation parts only: train one decoder "
                        "per --grid value (cached, as a run would), explain OOD mixtures of validation clips with "
                        "each, and pick the largest λ_1 whose validation Fid-In stays within --margin of the all-ones "
                        "mask's. Writes selection.csv and selection.md to --out (default "
                        "results/runs/lmac-l1-selection-<profile>). The evaluation part is never read.")
        parser.add_argument("--grid", default="0.4,0.8,1.6,3.2", help="λ_1 values to train (default 0.4,0.8,1.6,3.2: "
                                                                      "the paper's 0.4 × 1, 2, 4, 8)")
        parser.add_argument("--margin", type=float, default=0.2,
                            help="largest allowed drop of validation Fid-In below the all-ones mask's (default 0.2)")
        add_common_options(parser)
        parser.set_defaults(setting="ood", contamination="mixtures", speech_dir=None, l2i_rth="0.2", methods="lmac",
                            domains="listenable", limit=None, batch_size=16, save_audio=False,
                            ad_single_softmax=False, resume=False)
        return parser
    if command == "explain":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py explain",
            description="Explain one audio file: print the classifier's prediction and write the listenable "
                        "interpretation (WAV), the input WAV and a spectrogram / mask PNG to --out. The classifier "
                        "and the method are trained on --dataset (or loaded from the cache) first.")
        parser.add_argument("audio", help="audio file (wav/flac/ogg, any rate; mono mix, 16 kHz, 5 s)")
        parser.add_argument("--method", default="lmac", help="explainer (default lmac)")
        add_common_options(parser)
        parser.set_defaults(setting="clean", contamination="mixtures", speech_dir=None, l2i_rth="0.2",
                            domains="listenable", limit=None, batch_size=1, save_audio=False, ad_single_softmax=False,
                            resume=False)
        return parser
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="Benchmark of interpretation methods for audio classifiers (L-MAC paper, ICML 2024): trains "
                    "what is missing (cached), explains the evaluation samples with each method, computes AI, AD, "
                    "AG, FF, Fid-In, SPS, COMP and MM, and writes per_sample.csv, table.csv, table.md and run.json.")
    parser.add_argument("--setting", default="ood", choices=["id", "ood", "clean"],
                        help="id: each evaluation clip mixed with one noise clip at 0 dB (needs --noise-dir); "
                             "ood: with two contaminants (see --contamination); clean: the clips as they are. "
                             "Default: ood")
    parser.add_argument("--contamination", default="mixtures", choices=["mixtures", "speech", "white_noise"],
                        help="ood contaminant: other clips of the dataset (0.8/0.2), speech from --speech-dir "
                             "(0.8/0.2) or white noise (1/0.5). Default: mixtures")
    parser.add_argument("--speech-dir", help="folder of speech recordings for --contamination speech "
                                             "(LJSpeech's wavs/ in the paper)")
    parser.add_argument("--methods", default="saliency,lmac,all-ones",
                        help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())})")
    parser.add_argument("--l2i-rth", default="0.2,0.4",
                        help="L2I relevance thresholds, one table row each (default 0.2,0.4 as the paper)")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated settings: listenable (STFT→Mel) and/or mel. Default: listenable")
    parser.add_argument("--limit", type=int, help="evaluate only the first N evaluation clips")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
    parser.add_argument("--save-audio", action="store_true",
                        help="write, for every evaluated sample, the input WAV and each method's listenable "
                             "interpretation (ISTFT of the masked spectrogram with the input's phase) under OUT/audio/")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its per_sample.csv (an interrupted run): finished "
                             "samples are not computed again. Without it, results of the same configuration in "
                             "--out are replaced")
    parser.add_argument("--ad-single-softmax", action="store_true",
                        help="AD with one softmax (default: twice, as the published code)")
    add_common_options(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the benchmark and ``explain``: data, models, caches, device."""
    parser.add_argument("--dataset", default="esc50", choices=list(DATASETS),
                        help="esc50 (official layout), us8k (UrbanSound8K, official layout) or folder (any folder "
                             "of wav/flac/ogg files, labels from sub-folder names). Default: esc50")
    parser.add_argument("--data-root", help="dataset folder: ESC-50 (audio/, meta/esc50.csv; default $ESC50_ROOT, "
                                            "else ~/.cache/lmac-benchmark/esc50), UrbanSound8K (audio/fold*/, "
                                            "metadata/UrbanSound8K.csv; default $US8K_ROOT) or your folder")
    parser.add_argument("--folds", help="TRAIN:VALID:EVALUATION:POOL fold lists (default esc50 1-3:4:4:5, "
                                        "us8k 1-8:9:10:9)")
    parser.add_argument("--classifier-checkpoint", help="a classifier-*.pt from the checkpoint cache, or a "
                                                        "SpeechBrain folder with embedding_model.ckpt and "
                                                        "classifier.ckpt, instead of training one")
    parser.add_argument("--lmac-checkpoint", help="a trained L-MAC decoder state dict (SpeechBrain's psi_model.ckpt "
                                                  "of CNN14PSI_stft, or an lmac-*.pt of the cache) instead of training")
    parser.add_argument("--lmac-ft-guidance", type=float, default=4.0,
                        help="L-MAC FT's guidance weight λ_g (default 4, the paper's tables; 16 in its user study)")
    parser.add_argument("--lmac-ft-cth", type=float, default=0.6,
                        help="L-MAC FT's cosine-similarity threshold of guided samples (default 0.6)")
    parser.add_argument("--noise-dir", help="folder of noise recordings: L-MAC's 0 dB training augmentation and "
                                            "the id setting (WHAM! in the paper). Without it L-MAC trains on "
                                            "mixtures of training clips")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a Python module that registers your own explainers (repeatable), "
                             "e.g. --import my_explainer --methods energy")
    parser.add_argument("--set", dest="method_options", action="append", default=[], type=_method_option,
                        metavar="METHOD.KEY=VALUE", help="hyperparameter of a method, e.g. lmac.lambda_l1=0.4 "
                                                          "(repeatable; defaults are the paper's)")
    parser.add_argument("--profile", choices=list(PROFILES),
                        help="model sizes and schedules: paper (CNN14 width 64, decoder 2048) or cpu (same code, "
                             "small width, few epochs). Default: paper on CUDA, cpu otherwise")
    parser.add_argument("--out", help="output folder (default results/runs/<dataset>-<condition>-<profile>)")
    parser.add_argument("--cache-dir", help=f"checkpoint cache (default $LMAC_BENCHMARK_CACHE or {default_cache_dir()})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, draws, training (default 0)")
    parser.add_argument("--peak-normalisation", choices=list(PEAK_NORMALISATIONS), default="max",
                        help="how clips and mixtures are scaled: max, x / x.max() with the signed maximum as the "
                             "reference (default; samples may fall below −1), or absmax, x / max|x|")


def _number_list(text: str, flag: str, low: float, high: float) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 0.2,0.4") from None
    if not values or not all(low <= v <= high for v in values):
        raise UsageError(f"{flag} {text!r}: expected numbers in [{low}, {high}]")
    return values


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
    methods = available_methods() if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods:
        raise UsageError(f"--methods {args.methods!r}: name at least one method; registered: "
                         f"{', '.join(available_methods())}")
    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise UsageError(f"--methods: unknown method(s) {', '.join(unknown)}; registered: "
                         f"{', '.join(available_methods())}")
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    if not domains or any(d not in DOMAINS for d in domains):
        raise UsageError(f"--domains {args.domains!r}: choose from {', '.join(DOMAINS)}")
    for flag, value in (("--limit", args.limit), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be a positive integer")
    if not 0 <= args.seed < 2**32:
        raise UsageError(f"--seed {args.seed}: must be in 0 … 2**32 − 1")
    if args.folds:
        try:
            FoldPlan.parse(args.folds)
        except ValueError as error:
            raise UsageError(f"--folds: {error}") from None
    _check_device(args.device)
    _check_path(args.classifier_checkpoint, "--classifier-checkpoint", folder=False)
    _check_path(args.lmac_checkpoint, "--lmac-checkpoint", folder=False)
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
    if args.lmac_checkpoint:
        for name in ("lmac", "lmac-ft"):
            if name in methods:
                options.setdefault(name, {})["checkpoint"] = args.lmac_checkpoint
    for method, key, text in args.method_options:
        if method in available_methods() and method not in methods:
            raise UsageError(f"--set {method}.{key}: {method} is not among --methods ({', '.join(methods)}); add it "
                             "there or drop this --set")
        try:
            options.setdefault(method, {})[key] = parse_hyperparameter(method, key, text)
        except ValueError as error:
            raise UsageError(str(error)) from None
    profile = args.profile or default_profile(args.device)
    if args.profile is None and profile == "paper":
        print("profile: paper (the default on a GPU; pass --profile cpu for the small models)")
    condition = args.setting + (f"-{args.contamination}" if args.setting == "ood" else "")
    return RunConfig(
        dataset=args.dataset, setting=args.setting, contamination=args.contamination, data_root=args.data_root,
        folds=args.folds, classifier_checkpoint=args.classifier_checkpoint,
        noise_dir=args.noise_dir, speech_dir=args.speech_dir,
        methods=methods, method_options=options, imports=args.imports, domains=domains, profile=profile, limit=args.limit,
        out=args.out or os.path.join("results", "runs", f"{args.dataset}-{condition}-{profile}"),
        cache_dir=args.cache_dir or str(default_cache_dir()), device=args.device, seed=args.seed,
        batch_size=args.batch_size, ad_softmax_twice=not args.ad_single_softmax,
        peak_normalisation=args.peak_normalisation, save_audio=args.save_audio, resume=args.resume)


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
    chooses the CPU profile's L-MAC L1 weight on the validation part.

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
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        if command == "explain":
            args.methods = args.method
            args.out = args.out or "explanations"
            load_clip(args.audio)  # an unreadable file is reported before anything trains
        if command == "bench":
            print(bench(args))
        elif command == "select-lmac-l1":
            args.out = args.out or os.path.join("results", "runs", f"lmac-l1-selection-{args.profile or 'cpu'}")
            print(select_lmac_l1(config_from_args(args), _number_list(args.grid, "--grid", 0.0, float("inf")),
                                 args.margin))
        elif command == "explain":
            print(explain_file(config_from_args(args), args.audio))
        else:
            print(run(config_from_args(args)))
    except (OSError, ValueError, InvalidExplanationError) as error:  # bad option or input; --out taken
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if command != "run":
            raise
        print(f"\ninterrupted: the finished samples are in {args.out or 'the --out folder'}/unfinished/"
              "per_sample.csv and the earlier results are untouched; rerun with --resume to continue", file=sys.stderr)
        return 130
    return 0
