"""``run_benchmark.py explain FILE``: one recording's prediction, listenable interpretation and picture."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from benchmark.arguments import config_from_args
from benchmark.config import RunConfig
from benchmark.explanations import explain
from benchmark.options import add_common_options
from benchmark.pipeline import EvaluationSamples, prepare_batch
from benchmark.preparation import prepare
from classifiers.base import DomainModel
from datasets.audio import load_clip, write_audio
from datasets.contamination import ContaminatedSample
from foundation.frontend import DOMAINS, spectrogram_extent


def explain_file(config: RunConfig, audio: str | os.PathLike) -> str:
    """Explain one audio file with ``config.methods[0]`` in the listenable domain.

    Writes to ``config.out``: ``<stem>-input.wav``, ``<stem>-<method>.wav`` (the
    interpretation: ISTFT of the masked spectrogram with the input's phase) and
    ``<stem>-<method>.png`` (input spectrogram, mask, masked spectrogram; seconds and kHz).

    Returns:
        a one-line description of the prediction.
    Raises:
        AudioError: unreadable or silent file (checked before anything trains).
        ValueError: ``audio`` is a folder (``check_one_file``), or the method cannot explain the listenable
            domain.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    audio = Path(audio)
    check_one_file(audio)
    waveform = load_clip(audio, peak_normalisation=config.peak_normalisation).unsqueeze(0)
    torch.manual_seed(config.seed)
    inputs, classifier, explainers = prepare(config, {}, evaluation_part=False)
    explainer = explainers[0]
    if "listenable" not in explainer.domains:
        raise ValueError(f"--method {explainer.name} does not explain the listenable domain; choose another method")
    model = DomainModel(classifier, DOMAINS["listenable"]).eval()
    clip = EvaluationSamples([ContaminatedSample(0, str(audio), "", 1.0, 0.0, "clean")], waveform, {}, [-1])
    batch = prepare_batch(model, clip, [0], torch.device(config.device))
    probabilities = batch.unmasked.logits.softmax(1)[0]
    predicted = int(probabilities.argmax())
    explanation = explain(model, explainer, batch, config.seed)
    out = Path(config.out)
    stem = f"{audio.stem}-{explainer.label.replace(' ', '_')}"
    write_audio(out / f"{audio.stem}-input.wav", waveform[0])
    write_audio(out / f"{stem}.wav", explanation.listenable(batch)[0])
    panels = [("input log1p|STFT|", batch.features[0]), (f"{explainer.label} mask", explanation.mask[0]),
              ("the interpretation", explanation.masked_inputs(batch.features)[0][0])]
    figure, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for axis, (title, image) in zip(axes, panels):
        frames, bins = image.shape
        extent = spectrogram_extent(frames, bins)
        axis.imshow(image.detach().cpu().T.numpy(), origin="lower", aspect="auto", cmap="magma", extent=extent)
        axis.set(title=title, xlabel="time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    figure.tight_layout()
    figure.savefig(out / f"{stem}.png", dpi=80)
    plt.close(figure)
    names = inputs.data.class_names
    return (f"{audio}: predicted {names[predicted]!r} (p = {float(probabilities[predicted]):.3f}); "
            f"wrote {stem}.wav, {stem}.png and {audio.stem}-input.wav to {out}")


def check_one_file(audio: str | os.PathLike) -> None:
    """Raise ``ValueError`` when ``audio`` is a folder: explain takes one file; the message names the benchmark's
    options that explain a folder of recordings."""
    if Path(audio).is_dir():
        raise ValueError(f"explain {audio}: a folder; explain takes one audio file. To explain a folder of "
                         f"recordings, run the benchmark on it: python run_benchmark.py --dataset folder --data-root "
                         f"{audio} (one sub-folder per class, or unlabelled files with --classifier hf:FOLDER)")


def build_parser() -> argparse.ArgumentParser:
    """The options of ``run_benchmark.py explain``."""
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


def main(args: argparse.Namespace) -> str:
    """``run_benchmark.py explain FILE``: ``explain_file`` with the parsed options; the file is read
    (and refused if bad) before anything trains."""
    args.methods = args.method
    args.out = args.out or "explanations"
    check_one_file(args.audio)
    load_clip(args.audio, peak_normalisation=args.peak_normalisation)
    return explain_file(config_from_args(args), args.audio)
