"""Command line of the benchmark: ``python run_benchmark.py --dataset esc50 --setting ood``."""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import sys

import torch

from benchmark.checkpoints import default_cache_dir
from benchmark.frontend import DOMAINS
from benchmark.harness import RunConfig, run
from benchmark.profiles import PROFILES, default_profile
from datasets.audio import AudioError
from datasets.sources import DATASETS
from methods import available_methods


def _method_option(text: str) -> tuple[str, str, object]:
    """``METHOD.KEY=VALUE`` → (method, key, value); VALUE parsed as a Python literal when possible."""
    try:
        target, value = text.split("=", 1)
        method, key = target.split(".", 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected METHOD.KEY=VALUE, got {text!r}") from None
    try:
        value = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        pass
    return method, key, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="Benchmark of interpretation methods for audio classifiers (L-MAC paper, ICML 2024): trains "
                    "what is missing (cached), explains the evaluation samples with each method, computes AI, AD, "
                    "AG, FF, Fid-In, SPS, COMP and MM, and writes per_sample.csv, table.csv, table.md and run.json.")
    parser.add_argument("--dataset", default="esc50", choices=list(DATASETS),
                        help="esc50 (official layout), us8k (UrbanSound8K, official layout) or folder (any folder "
                             "of wav/flac/ogg files, labels from sub-folder names). Default: esc50")
    parser.add_argument("--setting", default="ood", choices=["id", "ood", "clean"],
                        help="id: each evaluation clip mixed with one noise clip at 0 dB (needs --noise-dir); "
                             "ood: with two contaminants (see --contamination); clean: the clips as they are. "
                             "Default: ood")
    parser.add_argument("--contamination", default="mixtures", choices=["mixtures", "speech", "white_noise"],
                        help="ood contaminant: other clips of the dataset (0.8/0.2), speech from --speech-dir "
                             "(0.8/0.2) or white noise (1/0.5). Default: mixtures")
    parser.add_argument("--speech-dir", help="folder of speech recordings for --contamination speech "
                                             "(LJSpeech's wavs/ in the paper)")
    parser.add_argument("--data-root", help="dataset folder: ESC-50 (audio/, meta/esc50.csv; default $ESC50_ROOT, "
                                            "else ~/.cache/lmac-benchmark/esc50), UrbanSound8K (audio/fold*/, "
                                            "metadata/UrbanSound8K.csv; default $US8K_ROOT) or your folder")
    parser.add_argument("--folds", help="TRAIN:VALID:EVALUATION:POOL fold lists (default esc50 1-3:4:4:5, "
                                        "us8k 1-8:9:10:9)")
    parser.add_argument("--classifier-checkpoint", help="a classifier-*.pt from the checkpoint cache, instead of "
                                                        "training one (e.g. to explain --dataset folder)")
    parser.add_argument("--noise-dir", help="folder of noise recordings: L-MAC's 0 dB training augmentation and "
                                            "the id setting (WHAM! in the paper). Without it L-MAC trains on "
                                            "mixtures of training clips")
    parser.add_argument("--methods", default="saliency,lmac,all-ones",
                        help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())})")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a Python module that registers your own explainers (repeatable), "
                             "e.g. --import my_explainer --methods energy")
    parser.add_argument("--set", dest="method_options", action="append", default=[], type=_method_option,
                        metavar="METHOD.KEY=VALUE", help="hyperparameter of a method, e.g. lmac.lambda_l1=0.4 "
                                                          "(repeatable; defaults are the paper's)")
    parser.add_argument("--l2i-rth", default="0.2,0.4",
                        help="L2I relevance thresholds, one table row each (default 0.2,0.4 as the paper)")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated settings: listenable (STFT→Mel) and/or mel. Default: listenable")
    parser.add_argument("--profile", choices=list(PROFILES),
                        help="model sizes and schedules: paper (CNN14 width 64, decoder 2048) or cpu (same code, "
                             "small width, few epochs). Default: paper on CUDA, cpu otherwise")
    parser.add_argument("--limit", type=int, help="evaluate only the first N evaluation clips")
    parser.add_argument("--out", help="output folder (default results/<dataset>-<setting>-<profile>); a rerun with "
                                      "the same configuration resumes from its per_sample.csv")
    parser.add_argument("--cache-dir", help=f"checkpoint cache (default $LMAC_BENCHMARK_CACHE or {default_cache_dir()})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, draws, training (default 0)")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
    parser.add_argument("--ad-single-softmax", action="store_true",
                        help="AD with one softmax (default: twice, as the published code)")
    return parser


def config_from_args(args: argparse.Namespace) -> RunConfig:
    for module in args.imports:
        importlib.import_module(module)
    methods = available_methods() if args.methods == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in available_methods()]
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(unknown)}; registered: {', '.join(available_methods())}")
    if any(d not in DOMAINS for d in domains):
        raise SystemExit(f"unknown domain in {args.domains!r}; choose from {', '.join(DOMAINS)}")
    options: dict[str, dict] = {}
    options["l2i"] = {"rth": [float(v) for v in args.l2i_rth.split(",")]}
    for method, key, value in args.method_options:
        options.setdefault(method, {})[key] = value
    profile = args.profile or default_profile(args.device)
    condition = args.setting + (f"-{args.contamination}" if args.setting == "ood" else "")
    return RunConfig(
        dataset=args.dataset, setting=args.setting, contamination=args.contamination, data_root=args.data_root,
        folds=args.folds, classifier_checkpoint=args.classifier_checkpoint,
        noise_dir=args.noise_dir, speech_dir=args.speech_dir,
        methods=methods, method_options=options, imports=args.imports, domains=domains, profile=profile, limit=args.limit,
        out=args.out or os.path.join("results", f"{args.dataset}-{condition}-{profile}"),
        cache_dir=args.cache_dir or str(default_cache_dir()), device=args.device, seed=args.seed,
        batch_size=args.batch_size, ad_softmax_twice=not args.ad_single_softmax)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        markdown = run(config)
    except (FileNotFoundError, AudioError, ValueError) as error:  # missing dataset (DatasetNotFoundError), folder or audio
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown)
    return 0
