"""The controlled dataset: real ESC-50 clips as backgrounds, each with a planted synthetic cue that
alone carries the label, so that what a classifier should rely on is known by construction
(docs/ground-truth.md; after Kim et al., "Sanity Simulations for Saliency Methods", ICML 2022, and
Arras et al., "CLEVR-XAI", 2022).

Each ESC-50 clip becomes one sample. Its label is drawn uniformly from ``CUE_CLASSES``,
independently of the background; the cue is a tone burst at the class's frequency (± 5 %), 0.5 s
with 20 ms raised-cosine ramps, at a uniform random onset, at −3…+3 dB RMS against the background
(the cue's RMS over its 0.5 s against the clip's over 5 s). Half the samples (drawn) also get a
distractor: a linear chirp of the same length and level law sweeping 0.75…1.3 × the frequency of
another class, at its own random onset. The chirp never carries the label: a classifier must learn
that the steady tone, not the sweep, tells the class.

Everything is drawn with ``numpy.random.default_rng(seed)`` in the backgrounds' file-name order,
and written as 16 kHz 32-bit float WAVs peak-normalised as the reference normalises clips
(÷ the signed maximum), with ``meta/controlled.csv``: the same seed and backgrounds give the same
bytes. The split keeps each background recording in one part, as ESC-50's does
(``datasets.split``). The cue's and distractor's waveforms are rebuilt exactly from the CSV
(``planted_waveforms``): the ground truth of a sample is the bins where its cue dominates
everything else and lies within 30 dB of its peak (``metrics.localisation.ideal_binary_mask``,
``benchmark.pipeline.truth_floor``), on each domain's own grid.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.io import wavfile
from tqdm import tqdm

from datasets import esc50
from datasets.audio import CLIP_SAMPLES, SAMPLE_RATE, load_clip

CUE_CLASSES = {"tone-400Hz": 400.0, "tone-800Hz": 800.0, "tone-1600Hz": 1600.0, "tone-2800Hz": 2800.0,
               "tone-4800Hz": 4800.0}
"""The classes (names in target order) and the frequency of each class's tone, in Hz."""
CUE_SECONDS = 0.5
RAMP_SECONDS = 0.02
TONE_JITTER = 0.05
"""The tone's frequency is the class's × U(1 − 0.05, 1 + 0.05)."""
SNR_DB = (-3.0, 3.0)
"""The cue's and the distractor's level: RMS over their 0.5 s against the background's over 5 s, dB, uniform."""
CHIRP_SPAN = (0.75, 1.3)
"""The distractor sweeps linearly from 0.75 × to 1.3 × another class's frequency."""
DISTRACTOR_SHARE = 0.5
VERSION = 1
"""Bumped whenever the generator's output changes (part of the generated folder's key)."""
META_FILE = "meta/controlled.csv"
COLUMNS = ["filename", "fold", "target", "category", "recording", "background", "cue_hz", "cue_onset_s",
           "cue_amplitude", "distractor_target", "distractor_low_hz", "distractor_high_hz", "distractor_onset_s",
           "distractor_amplitude", "file_absmax"]


def cue_waveform(low_hz: float, high_hz: float, onset_s: float, amplitude: float,
                 num_samples: int = CLIP_SAMPLES) -> torch.Tensor:
    """A planted event: a linear sweep from ``low_hz`` to ``high_hz`` (a tone burst when they are equal),
    ``CUE_SECONDS`` long with ``RAMP_SECONDS`` raised-cosine ramps, peak ``amplitude``, starting at
    ``onset_s``; zero elsewhere.

    Returns:
        (num_samples,) float64 at 16 kHz.
    """
    length = round(CUE_SECONDS * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    phase = 2 * np.pi * (low_hz * t + (high_hz - low_hz) * t ** 2 / (2 * CUE_SECONDS))
    ramp = round(RAMP_SECONDS * SAMPLE_RATE)
    envelope = np.ones(length)
    envelope[:ramp] = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
    envelope[-ramp:] = envelope[:ramp][::-1]
    wave = np.zeros(num_samples)
    start = round(onset_s * SAMPLE_RATE)
    wave[start:start + length] = (amplitude * envelope * np.sin(phase))[: max(0, num_samples - start)]
    return torch.from_numpy(wave)


def _rms(x: torch.Tensor) -> float:
    return float(x.square().mean().sqrt())


def draw_samples(backgrounds: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The drawn parameters of every sample, one per background clip in file-name order (levels as SNRs in
    dB; ``generate`` turns them into amplitudes). Columns: background, fold, recording, target,
    cue_hz, cue_onset_s, cue_snr_db, distractor_target (−1: none), distractor_low_hz, distractor_high_hz,
    distractor_onset_s, distractor_snr_db."""
    rng = np.random.default_rng(seed)
    frequencies = list(CUE_CLASSES.values())
    latest_onset = 5.0 - CUE_SECONDS - 0.1
    rows = []
    for background in backgrounds.sort_values("filename").itertuples():
        target = int(rng.integers(len(frequencies)))
        row = {"background": background.filename, "fold": background.fold, "recording": background.recording,
               "target": target, "cue_hz": frequencies[target] * rng.uniform(1 - TONE_JITTER, 1 + TONE_JITTER),
               "cue_onset_s": rng.uniform(0.1, latest_onset), "cue_snr_db": rng.uniform(*SNR_DB)}
        other = int(rng.choice([k for k in range(len(frequencies)) if k != target]))
        onset, snr = rng.uniform(0.1, latest_onset), rng.uniform(*SNR_DB)
        has_distractor = rng.uniform() < DISTRACTOR_SHARE
        row.update(distractor_target=other if has_distractor else -1,
                   distractor_low_hz=CHIRP_SPAN[0] * frequencies[other] if has_distractor else 0.0,
                   distractor_high_hz=CHIRP_SPAN[1] * frequencies[other] if has_distractor else 0.0,
                   distractor_onset_s=onset if has_distractor else 0.0, distractor_snr_db=snr)
        rows.append(row)
    return pd.DataFrame(rows)


def generate(backgrounds_root: Path, out: Path, seed: int) -> None:
    """Write the controlled dataset of the ESC-50 copy ``backgrounds_root`` to ``out`` (``audio/*.wav``,
    ``META_FILE``), into a temporary folder first, renamed when complete.

    Raises:
        DatasetNotFoundError, ValueError, FileNotFoundError, AudioError: as ``esc50.load_metadata`` and
            ``load_clip`` for the backgrounds.
    """
    backgrounds = esc50.load_metadata(backgrounds_root)
    drawn = draw_samples(backgrounds, seed)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "audio").mkdir(parents=True)
    rows = []
    names = dict(enumerate(CUE_CLASSES))
    for i, row in enumerate(tqdm(drawn.to_dict("records"), desc="controlled dataset", unit="clip", leave=False)):
        background = load_clip(backgrounds_root / "audio" / row["background"]).double()
        level = _rms(background)
        unit_cue = cue_waveform(row["cue_hz"], row["cue_hz"], row["cue_onset_s"], 1.0)
        cue_gain = level * 10 ** (row["cue_snr_db"] / 20) / _rms(unit_cue[unit_cue != 0])
        clip = background + cue_gain * unit_cue
        distractor_gain = 0.0
        if row["distractor_target"] >= 0:
            unit = cue_waveform(row["distractor_low_hz"], row["distractor_high_hz"], row["distractor_onset_s"], 1.0)
            distractor_gain = level * 10 ** (row["distractor_snr_db"] / 20) / _rms(unit[unit != 0])
            clip = clip + distractor_gain * unit
        peak = float(clip.max())
        filename = f"c{i:04d}-{Path(row['background']).stem}.wav"
        written = (clip / peak).float()
        wavfile.write(partial / "audio" / filename, SAMPLE_RATE, written.numpy())  # no dated PEAK chunk: same bytes
        rows.append({"filename": filename, "fold": row["fold"], "target": row["target"],
                     "category": names[row["target"]], "recording": row["recording"],
                     "background": row["background"], "cue_hz": row["cue_hz"], "cue_onset_s": row["cue_onset_s"],
                     "cue_amplitude": cue_gain / peak, "distractor_target": row["distractor_target"],
                     "distractor_low_hz": row["distractor_low_hz"], "distractor_high_hz": row["distractor_high_hz"],
                     "distractor_onset_s": row["distractor_onset_s"], "distractor_amplitude": distractor_gain / peak,
                     "file_absmax": float(written.abs().max())})
    (partial / "meta").mkdir()
    pd.DataFrame(rows, columns=COLUMNS).to_csv(partial / META_FILE, index=False)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)


def dataset_key(backgrounds_root: Path, seed: int) -> str:
    """16 hex digits of SHA-256 over the generator's version, the seed and the backgrounds' metadata and
    audio bytes: the name of the generated folder, so that other backgrounds or code make another one."""
    digest = hashlib.sha256(f"controlled v{VERSION} seed {seed}\n".encode())
    meta = esc50.load_metadata(backgrounds_root)
    digest.update(meta[["filename", "fold", "src_file"]].to_csv(index=False).encode())
    for name in meta["filename"]:
        digest.update(hashlib.sha256((backgrounds_root / "audio" / name).read_bytes()).digest())
    return digest.hexdigest()[:16]


def prepare(backgrounds_root: Path, seed: int, cache_dir: Path) -> Path:
    """The controlled dataset's folder for these backgrounds and seed: ``cache_dir/controlled/<key>``
    (``dataset_key``), generated there first when absent (about 20 s for 400 clips)."""
    out = Path(cache_dir) / "controlled" / dataset_key(backgrounds_root, seed)
    if not (out / META_FILE).is_file():
        print(f"generating the controlled dataset (seed {seed}) from {backgrounds_root} in {out}")
        out.parent.mkdir(parents=True, exist_ok=True)
        generate(backgrounds_root, out, seed)
    return out


def load_metadata(root: Path) -> pd.DataFrame:
    """``root/META_FILE``, sorted by file name.

    Raises:
        ValueError: a column is missing (the folder was not written by this generator: delete it to regenerate).
        FileNotFoundError: the CSV or a listed audio file is missing.
    """
    csv = Path(root) / META_FILE
    if not csv.is_file():
        raise FileNotFoundError(f"no {csv}; delete {root} and run again to regenerate the controlled dataset")
    meta = pd.read_csv(csv, dtype={"recording": str})
    missing = [c for c in COLUMNS if c not in meta.columns]
    absent = [f for f in meta.get("filename", []) if not (Path(root) / "audio" / f).is_file()]
    if missing or absent:
        raise FileNotFoundError(f"{root} is not a complete controlled dataset (missing "
                                f"{', '.join(missing) or absent[0]}); delete the folder and run again to regenerate it")
    return meta.sort_values("filename", kind="stable").reset_index(drop=True)


def planted_waveforms(meta: pd.DataFrame, peak_normalisation: str = "max") -> tuple[torch.Tensor, torch.Tensor]:
    """The cue and the distractor of each row of ``meta`` as they are in its clip once loaded (``load_clip``
    with ``peak_normalisation``), rebuilt from the drawn parameters.

    Returns:
        cues, distractors: (N, 80000) float32 each (a row without distractor is zero).
    """
    cues, distractors = [], []
    for row in meta.itertuples():
        scale = 1.0 if peak_normalisation == "max" else 1.0 / row.file_absmax
        cues.append(cue_waveform(row.cue_hz, row.cue_hz, row.cue_onset_s, row.cue_amplitude * scale))
        distractors.append(cue_waveform(row.distractor_low_hz, row.distractor_high_hz, row.distractor_onset_s,
                                        row.distractor_amplitude * scale))
    return torch.stack(cues).float(), torch.stack(distractors).float()
