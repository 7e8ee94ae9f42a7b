"""The command-line options of ``run_benchmark.py`` and its commands (``explain``, ``bench``,
``select-lmac-l1``, ``sanity``, ``report``, ``listening-results``); ``benchmark.cli`` checks their values and
runs the command."""
from __future__ import annotations

import argparse

import torch

from benchmark.checkpoints import default_cache_dir
from benchmark.precision import PRECISIONS
from benchmark.profiles import PROFILES
from classifiers import available_classifiers
from datasets.audio import PEAK_NORMALISATIONS
from datasets.sources import DATASETS
from methods import available_methods
from methods.base import control_methods

OOD_MIXTURES_NOT_SAVED = dict(setting="ood", contamination="mixtures", speech_dir=None, l2i_rth="0.2",
                              save_audio=False, ad_single_softmax=False, resume=False)
"""Run options that ``bench`` and ``sanity`` fix: OOD mixtures, L2I at RTH 0.2, no audio, AD as published."""

COMMANDS = ("explain", "bench", "select-lmac-l1", "sanity", "report", "listening-results", "reference-models",
            "download")


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
    ("explain"), ``run_benchmark.py bench`` ("bench"), ``run_benchmark.py select-lmac-l1`` or
    ``run_benchmark.py sanity``."""
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
        parser.add_argument("--domains", default="listenable", help="domains: listenable and/or mel")
        parser.add_argument("--repeats", type=int, default=3, help="each timing is the fastest of this many runs")
        parser.add_argument("--paper-size", action="store_true",
                            help="use seeded paper-size SpeechBrain checkpoints (CNN14 width 64, L-MAC decoder dim "
                                 "2048), written to the cache on first use, as --classifier-checkpoint and "
                                 "--lmac-checkpoint")
        add_common_options(parser)
        parser.set_defaults(**OOD_MIXTURES_NOT_SAVED)
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
    if command == "report":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py report",
            description="Build RUN_DIR/report/: index.html (the run's tables, best value per column marked, and a "
                        "gallery of samples with each method's listenable interpretation, mask and metrics) and "
                        "listening.html (a MUSHRA-style listening test that saves the ratings as CSV in the browser). "
                        "Static and self-contained: open index.html from disk, offline. Missing WAVs and pictures "
                        "are computed once, with the run's models from the checkpoint cache.")
        parser.add_argument("run_dir", help="a finished run's folder (per_sample.csv, table.csv, run.json)")
        parser.add_argument("--samples", type=int, default=12,
                            help="samples in the gallery and the listening test, spread over classes (default 12)")
        parser.add_argument("--seed", type=int, help="seed of the sample choice and the order of the listening "
                                                     "test's conditions (default: the run's seed)")
        return parser
    if command == "download":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py download",
            description="Download a dataset's official archive (with a progress bar; an interrupted download "
                        "continues), check its checksum, unpack it into the data root (default "
                        "~/.cache/lmac-benchmark/esc50 or .../UrbanSound8K, else $ESC50_ROOT / $US8K_ROOT) and "
                        "print the command that runs the benchmark on it. The only command that downloads.")
        parser.add_argument("dataset", choices=["esc50", "us8k"], help="esc50 (about 650 MB) or us8k (about 6 GB)")
        parser.add_argument("--data-root", help="folder to create (default: the dataset's default data root)")
        parser.add_argument("--url", help="another source of the same archive (a mirror)")
        parser.add_argument("--checksum", help="the archive's sha256:HEX or md5:HEX when --url serves another file")
        return parser
    if command == "reference-models":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py reference-models",
            description="Copy the classifier and trainable explainers that finished runs of the cpu profile used "
                        "from the checkpoint cache into results/reference-models/ and list them in its "
                        "manifest.json (SHA-256, command, code version, data content key, training seed, "
                        "validation accuracy). For the maintainers of the shipped models.")
        parser.add_argument("run_dirs", nargs="+", help="finished run folders (run.json lists their models)")
        return parser
    if command == "listening-results":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py listening-results",
            description="Summarise the ratings CSVs saved by listening.html: per question and condition the mean, "
                        "its Student-t 95 % confidence interval and n, after the MUSHRA post-screening (listeners who "
                        "rate the hidden reference below 90 on more than 15 % of items are excluded). Writes "
                        "listening.csv, listening.md and listening.png to --out.")
        parser.add_argument("csv", nargs="+", help="ratings CSV files (one per listener session)")
        parser.add_argument("--out", default="results/runs/listening",
                            help="output folder (default results/runs/listening)")
        return parser
    if command == "sanity":
        parser = argparse.ArgumentParser(
            prog="run_benchmark.py sanity",
            description="Sanity check by cascading model-parameter randomisation (Adebayo et al. 2018; "
                        "docs/protocol.md §8): re-initialise the classifier's parameter groups from the top (CNN14: "
                        "block 6, then 6-5, ..., 6-1, then the head too), explain the OOD mixtures again with each "
                        "method (trained interpreters kept fixed, the trained classifier's class explained) and "
                        "compare each mask with the trained model's by Spearman rank correlation and SSIM; constant "
                        "maps are counted, not scored. Writes sanity.csv, sanity_table.csv, sanity.md, sanity.png "
                        "and sanity.json to --out (default results/runs/sanity-<profile>).")
        parser.add_argument("--methods", default="saliency,integrated-gradients,gradcam,l2i,lmac",
                            help=f"comma-separated explainers, or 'all' (registered: {', '.join(available_methods())})")
        parser.add_argument("--limit", type=int, default=20,
                            help="evaluation clips (default 20: 40 samples of the ood condition)")
        parser.add_argument("--batch-size", type=int, default=16, help="evaluation batch size (default 16)")
        parser.add_argument("--domains", default="listenable",
                            help="comma-separated domains: listenable and/or mel. Default: listenable")
        add_common_options(parser)
        parser.set_defaults(**OOD_MIXTURES_NOT_SAVED)
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
                    "AG, FF, Fid-In, SPS, COMP, MM, Loc-AUC and Loc-mass (and Ins-AUC, Del-AUC with --curves), with "
                    "95 % confidence intervals and paired significance marks, and writes per_sample.csv, table.csv, "
                    "table.md, table.tex, figure.png and run.json.")
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
                             "classifier passes per map")
    parser.add_argument("--seeds", help="comma-separated training seeds, e.g. 0,1,2: train the classifier and the "
                                        "trainable explainers once per seed (cached), evaluate each into "
                                        "OUT/seed-<s>/ and write the tables of the per-sample values averaged over "
                                        "the seeds, with the spread of the seed means, to OUT. The contaminant draws "
                                        "and the explainers' random draws keep --seed")
    parser.add_argument("--l2i-rth", default="0.2,0.4",
                        help="L2I relevance thresholds, one table row each (default 0.2,0.4 as the paper)")
    parser.add_argument("--domains", default="listenable",
                        help="comma-separated domains: listenable (STFT→Mel) and/or mel. Default: listenable")
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
                                        "us8k 1-3:4:5:6 as the authors; the official UrbanSound8K 10-fold "
                                        "protocol is e.g. 1-8:9:10:9)")
    parser.add_argument("--data-folds", help="read only these folds of the dataset, e.g. 4: with the full ESC-50 "
                                             "this is the fold-4 copy that the shipped reference models were "
                                             "trained on (the same split and models, so the README's tables)")
    parser.add_argument("--classifier", default="cnn14",
                        help=f"the explained classifier: {', '.join(available_classifiers())} (cnn14, the paper's, "
                             "and ast, an Audio Spectrogram Transformer, are trained on the data and cached; "
                             "hf:FOLDER_OR_HUB_ID loads a pretrained transformers audio classifier; --import a module "
                             "that registers your own). Default: cnn14")
    parser.add_argument("--classifier-checkpoint", help="a CNN14 classifier-*.pt from the checkpoint cache, or a "
                                                        "SpeechBrain folder with embedding_model.ckpt and "
                                                        "classifier.ckpt, instead of training one")
    parser.add_argument("--lmac-checkpoint", help="a trained L-MAC decoder state dict (SpeechBrain's psi_model.ckpt "
                                                  "of CNN14PSI_stft, or an lmac-*.pt of the cache) instead of training "
                                                  "one for the listenable domain")
    parser.add_argument("--lmac-mel-checkpoint", help="the same for the mel domain (SpeechBrain's psi_model.ckpt of "
                                                      "CNN14PSI, or an lmac-mel-*.pt of the cache)")
    parser.add_argument("--lmac-ft-guidance", type=float, default=4.0,
                        help="L-MAC FT's guidance weight λ_g (default 4, the paper's tables; 16 in its user study)")
    parser.add_argument("--lmac-ft-cth", type=float, default=0.6,
                        help="L-MAC FT's cosine-similarity threshold of guided samples (default 0.6)")
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
