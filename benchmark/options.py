"""The command-line options of ``run_benchmark.py`` (each command's own are in its module under
``benchmark.commands``), and their checks: ``config_from_args`` turns parsed options into a
``RunConfig`` or raises ``UsageError`` naming the flag and the fix."""
from __future__ import annotations

import argparse
import importlib

import torch

from classifiers import available_classifiers
from datasets.audio import PEAK_NORMALISATIONS
from datasets.sources import DATASETS
from foundation.checkpoints import default_cache_dir
from foundation.precision import PRECISIONS
from foundation.profiles import PROFILES
from methods import available_methods
from methods.registry import control_methods

OOD_MIXTURES_NOT_SAVED = dict(setting="ood", contamination="mixtures", speech_dir=None, l2i_rth="0.2",
                              save_audio=False, ad_single_softmax=False, resume=False)
"""Run options that ``bench`` and ``sanity`` fix: OOD mixtures, L2I at RTH 0.2, no audio, AD as published."""

COMMANDS = {"explain": "explain", "bench": "bench", "select-lmac-l1": "select_lmac_l1", "sanity": "sanity",
            "report": "report", "listening-results": "listening_results", "reference-models": "reference_models",
            "download": "download", "rankings": "rankings", "leaderboard": "leaderboard", "rank": "rank",
            "meta-evaluate": "meta_evaluate"}
"""The commands of ``run_benchmark.py`` and their modules in ``benchmark.commands``."""


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
    """The options of ``run_benchmark.py`` (command "run") or of one of its ``COMMANDS`` (each command's
    module declares its own, ``benchmark.commands.<module>.build_parser``)."""
    if command != "run":
        return importlib.import_module(f"benchmark.commands.{COMMANDS[command]}").build_parser()
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="Benchmark of interpretation methods for audio classifiers (L-MAC paper, ICML 2024): trains "
                    "what is missing (cached), explains the evaluation samples with each method, computes AI, AD, "
                    "AG, FF, Fid-In, SPS, COMP, MM, Loc-AUC and Loc-mass (and Ins-AUC, Del-AUC with --curves), with "
                    "95 % confidence intervals and paired significance marks, and writes per_sample.csv, table.csv, "
                    "table.md, table.tex, figure.png and run.json.",
        epilog=f"commands: run_benchmark.py COMMAND [options], COMMAND one of {', '.join(COMMANDS)}; "
               "run_benchmark.py COMMAND --help gives its options")
    parser.add_argument("--setting", default="ood", choices=["id", "ood", "clean"],
                        help="id: each evaluation clip mixed with one noise clip at 0 dB (needs --noise-dir); "
                             "ood: with two contaminants (see --contamination); clean: the clips as they are. "
                             "Default: ood")
    parser.add_argument("--contamination", default="mixtures", choices=["mixtures", "speech", "white_noise"],
                        help="ood contaminant: other clips of the dataset (0.8/0.2), speech from --speech-dir "
                             "(0.8/0.2) or white noise (1/0.5). Default: mixtures")
    parser.add_argument("--speech-dir", help="folder of speech recordings for --contamination speech "
                                             "(LJSpeech's wavs/ in the paper)")
    parser.add_argument("--methods", default="saliency,lmac",
                        help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())})")
    parser.add_argument("--controls", default=",".join(control_methods()),
                        help="control rows added to --methods: all-ones (keeps everything), random (uniform noise "
                             "map) and energy (the input's log1p magnitudes); 'none' for none. Default: all three")
    parser.add_argument("--curves", action="store_true",
                        help="also compute deletion and insertion curves (k = 1, 2, 5, 10, 20, 50 %% of the bins "
                             "each map ranks first removed or kept) and their areas Del-AUC and Ins-AUC: 12 more "
                             "classifier passes per map; always on with --dataset controlled, whose metric agreement "
                             "needs them")
    parser.add_argument("--robustness", action="store_true",
                        help="also compute the robustness metrics Max-Sens, Avg-Sens, RIS and ROS (Quantus; "
                             "docs/robustness.md): each input perturbed --robustness-draws times and explained again "
                             "by the same method, so about that many times the cost of each explanation")
    parser.add_argument("--robustness-samples", type=int, metavar="N",
                        help="with --robustness: only the first N evaluation samples (the other rows' robustness "
                             "cells are empty). Default: all")
    parser.add_argument("--robustness-draws", type=int, metavar="D",
                        help="with --robustness: perturbed copies of each input (default 10)")
    parser.add_argument("--robustness-level", type=float, metavar="FRACTION",
                        help="with --robustness: the Gaussian noise's standard deviation as a fraction of each "
                             "input's own standard deviation on the domain's grid (default 0.1)")
    parser.add_argument("--shuffle-labels", action="store_true",
                        help="--dataset controlled: train the classifier on the training and validation parts with "
                             "their labels permuted (a data-randomisation control); the reliance check must then "
                             "refuse it (exit 2)")
    parser.add_argument("--seeds", help="comma-separated training seeds, e.g. 0,1,2: train the classifier and the "
                                        "trainable explainers once per seed (cached), evaluate each into "
                                        "OUT/seed-<s>/ and write the tables of the per-sample values averaged over "
                                        "the seeds, with the spread of the seed means, to OUT. The contaminant draws "
                                        "and the explainers' random draws keep --seed")
    parser.add_argument("--l2i-rth", default="0.2,0.4",
                        help="L2I relevance thresholds, one table row each (default 0.2,0.4 as the paper); an "
                             "alias of --set l2i.rth=[0.2,0.4]")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated domains: listenable (STFT→Mel) and/or the classifier's own: mel, or "
                             "waveform for a model that reads samples (wav2vec2 family). Default: listenable")
    parser.add_argument("--limit", type=int, help="evaluate only the first N evaluation clips")
    parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
    parser.add_argument("--save-audio", action="store_true",
                        help="write, for every evaluated sample, the input WAV and each method's listenable "
                             "interpretation (ISTFT of the masked spectrogram with the input's phase) under OUT/audio/")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out (an interrupted or finished run): finished samples are not "
                             "computed again. Only the same run is continued: the same settings, data (by content) "
                             "and model weights; a larger --limit extends it, a smaller one is refused. Without it, "
                             "results of the same settings in --out are replaced when the run finishes")
    parser.add_argument("--ad-single-softmax", action="store_true",
                        help="AD with one softmax (default: twice, as the published code)")
    add_common_options(parser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the benchmark and ``explain``: data, models, caches, device."""
    parser.add_argument("--dataset", default="esc50", choices=list(DATASETS),
                        help="esc50 (official layout), us8k (UrbanSound8K, official layout), folder (any folder "
                             "of wav/flac/ogg files, labels from sub-folder names) or controlled (ESC-50 clips of "
                             "--data-root with a planted cue that alone carries the label: the ground-truth track, "
                             "docs/ground-truth.md). Default: esc50")
    parser.add_argument("--data-root", help="dataset folder: ESC-50 (audio/, meta/esc50.csv; default $ESC50_ROOT, "
                                            "else ~/.cache/lmac-benchmark/esc50), UrbanSound8K (audio/fold*/, "
                                            "metadata/UrbanSound8K.csv; default $US8K_ROOT) or your folder")
    parser.add_argument("--folds", help="TRAIN:VALID:EVALUATION:POOL fold lists (default esc50 1-3:4:4:5, "
                                        "us8k 1-3:4:5:6 as the authors; the official UrbanSound8K 10-fold "
                                        "protocol is e.g. 1-8:9:10:9)")
    parser.add_argument("--data-folds", help="read only these folds of the dataset, e.g. 4: with the full ESC-50 "
                                             "this is the fold-4 copy that the shipped reference models were "
                                             "trained on (the same split and models, so the documented tables)")
    parser.add_argument("--classifier", default="cnn14",
                        help=f"the explained classifier: {', '.join(available_classifiers())} (cnn14, the paper's, "
                             "and ast, an Audio Spectrogram Transformer, are trained on the data and cached; "
                             "hf:FOLDER_OR_HUB_ID loads a pretrained transformers audio classifier; --import a module "
                             "that registers your own). Default: cnn14")
    parser.add_argument("--prompt-template", help="zero-shot CLAP (--classifier hf:CLAP_FOLDER_OR_ID): the prompt of "
                                                  "each class, {} the dataset's class name. Default: "
                                                  "'This is a sound of {}.'")
    parser.add_argument("--classifier-checkpoint", help="a CNN14 classifier-*.pt from the checkpoint cache, or a "
                                                        "SpeechBrain folder with embedding_model.ckpt and "
                                                        "classifier.ckpt, instead of training one")
    parser.add_argument("--lmac-checkpoint", help="a trained L-MAC decoder state dict (SpeechBrain's psi_model.ckpt "
                                                  "of CNN14PSI_stft, or an lmac-*.pt of the cache) instead of training "
                                                  "one for the listenable domain; an alias of --set "
                                                  "lmac.checkpoint=PATH (and lmac-ft.checkpoint)")
    parser.add_argument("--lmac-mel-checkpoint", help="the same for the mel domain (SpeechBrain's psi_model.ckpt of "
                                                      "CNN14PSI, or an lmac-mel-*.pt of the cache); an alias of --set "
                                                      "lmac.mel_checkpoint=PATH")
    parser.add_argument("--lmac-ft-guidance", type=float, default=4.0,
                        help="L-MAC FT's guidance weight λ_g (default 4, the paper's tables; 16 in its user study); "
                             "an alias of --set lmac-ft.guidance=4")
    parser.add_argument("--lmac-ft-cth", type=float, default=0.6,
                        help="L-MAC FT's cosine-similarity threshold of guided samples (default 0.6); an alias of "
                             "--set lmac-ft.cth=0.6")
    parser.add_argument("--noise-dir", help="folder of noise recordings: L-MAC's 0 dB training augmentation and "
                                            "the id setting (WHAM! in the paper). Without it L-MAC trains on "
                                            "mixtures of training clips")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a Python module that registers your own explainers or classifiers "
                             "(repeatable), e.g. --import my_explainer --methods energy")
    parser.add_argument("--set", dest="method_options", action="append", default=[], type=_method_option,
                        metavar="METHOD.KEY=VALUE", help="hyperparameter of a method, e.g. lmac.lambda_l1=0.4 "
                                                          "(repeatable; defaults are the paper's)")
    parser.add_argument("--profile", choices=list(PROFILES),
                        help="model sizes and schedules: paper (CNN14 width 64, decoder 2048) or cpu (same code, "
                             "small width, few epochs). Default: paper on CUDA, cpu otherwise")
    parser.add_argument("--out", help="output folder (default results/runs/<dataset>-<condition>-<profile>)")
    parser.add_argument("--cache-dir",
                        help=f"checkpoint cache (default $LMAC_BENCHMARK_CACHE or {default_cache_dir()})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, draws, training (default 0)")
    parser.add_argument("--threads", type=int,
                        help="torch's intra-op threads per process (default: the machine's cores, shared by the "
                             "processes torchrun starts on it). Per-sample results can differ in the last bits "
                             "between thread counts (L-MAC's decoder, ≤ 2e-12 in SPS here)")
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32",
                        help="fp32 (default) or bf16: the classifier's, the decoder's and the interpreter's passes "
                             "under bfloat16 autocast, in evaluation and training (CPUs with AVX512-BF16 or AMX, "
                             "GPUs); part of the run's identity and of the cache keys")
    parser.add_argument("--retrain", action="store_true",
                        help="train the classifier and the trainable explainers into the checkpoint cache (or load "
                             "what was trained there before) instead of using the shipped reference models of "
                             "results/reference-models; a retrain on another machine is a new draw")
    parser.add_argument("--peak-normalisation", choices=list(PEAK_NORMALISATIONS), default="max",
                        help="how clips and mixtures are scaled: max, x / x.max() with the signed maximum as the "
                             "reference (default; samples may fall below −1), or absmax, x / max|x|")
