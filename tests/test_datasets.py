"""Tests for datasets/ (audio loading §1, ESC-50 split and contamination §6) on real data."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import torchaudio

from datasets.audio import CLIP_SAMPLES, SAMPLE_RATE, AudioError, fit_length, load_clip
from datasets.contamination import (
    ContaminatedSample,
    clean_samples,
    draw_from_files,
    draw_ood_mixtures,
    draw_white_noise,
    mix,
    white_noise,
)
from datasets.esc50 import DatasetNotFoundError, load_metadata, make_split, resolve_data_root
from datasets.split import class_names

ESC50 = Path(__file__).resolve().parents[1].parent / "shared/data/esc50"


@pytest.fixture(scope="module")
def meta():
    return load_metadata(ESC50)


@pytest.fixture(scope="module")
def real_wav(meta):
    return ESC50 / "audio" / meta["filename"].iloc[0]


# ---- audio ---------------------------------------------------------------------------

def test_load_real_clip(real_wav):
    x = load_clip(real_wav)
    assert x.shape == (CLIP_SAMPLES,) and x.dtype == torch.float32
    assert torch.isclose(x.max(), torch.tensor(1.0))


def test_a_clip_whose_negative_peak_is_larger_is_divided_by_its_signed_maximum():
    path = ESC50 / "audio" / "4-125072-A-19.wav"  # a real clip: min −1 against max 0.61 of max|x|
    data, rate = sf.read(path, dtype="float32")
    raw = torchaudio.functional.resample(torch.from_numpy(data), rate, SAMPLE_RATE)
    assert -raw.min() > 1.5 * raw.max()
    reference = load_clip(path)  # x / x.max(), protocol §1
    torch.testing.assert_close(reference, raw / raw.max())
    assert reference.max() == 1.0 and reference.min() < -1.5  # samples below −1, as the reference's
    absmax = load_clip(path, peak_normalisation="absmax")
    torch.testing.assert_close(absmax, raw / raw.abs().max())
    assert absmax.min() == -1.0 and absmax.max() < 0.7


def test_a_clip_without_a_positive_sample_names_the_option(tmp_path):
    path = tmp_path / "negative.wav"
    sf.write(path, -np.abs(np.random.default_rng(0).normal(size=16000)).astype("float32") * 0.1, 16000)
    with pytest.raises(AudioError, match="--peak-normalisation absmax"):
        load_clip(path)
    assert load_clip(path, peak_normalisation="absmax").min() == -1.0


def test_stereo_22k_and_short_files(real_wav, tmp_path):
    data, rate = sf.read(real_wav, dtype="float32")
    assert rate == 44100
    half = data[::2]  # 22.05 kHz by decimation, enough for a format test
    stereo = np.stack([half, 0.5 * half], axis=1)
    p = tmp_path / "stereo.wav"
    sf.write(p, stereo, 22050)
    x = load_clip(p)
    assert x.shape == (CLIP_SAMPLES,) and x.dtype == torch.float32
    assert torch.isclose(x.max(), torch.tensor(1.0))
    # averaging the two channels is 0.75 * half; after peak normalisation the mono
    # version must load to the same waveform
    sf.write(tmp_path / "mono.wav", 0.75 * half, 22050)
    assert torch.allclose(x, load_clip(tmp_path / "mono.wav"), atol=1e-4)

    short = tmp_path / "short.flac"
    sf.write(short, data[: 3 * 44100], 44100)
    y = load_clip(short)
    assert y.shape == (CLIP_SAMPLES,)
    assert torch.count_nonzero(y[3 * SAMPLE_RATE + 50:]) == 0  # zero-padded at the end
    assert y[: 3 * SAMPLE_RATE].max() == 1.0


def test_bad_audio_raises(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(16000, dtype="float32"), 16000)
    with pytest.raises(AudioError, match="silent.wav"):
        load_clip(silent)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"this is not audio" * 100)
    with pytest.raises(AudioError, match="corrupt.wav"):
        load_clip(corrupt)
    with pytest.raises(AudioError, match="absent.wav"):
        load_clip(tmp_path / "absent.wav")


def test_fit_length():
    x = torch.arange(5.0)
    assert fit_length(x, 3).tolist() == [0, 1, 2]
    assert fit_length(x, 7).tolist() == [0, 1, 2, 3, 4, 0, 0]


# ---- data root and metadata ----------------------------------------------------------

def test_resolve_data_root(tmp_path, monkeypatch):
    monkeypatch.delenv("ESC50_ROOT", raising=False)
    with pytest.raises(DatasetNotFoundError) as e:
        resolve_data_root(tmp_path / "nowhere")
    msg = str(e.value)
    assert "ESC50_ROOT" in msg and "--data-root" in msg and "nowhere" in msg
    assert isinstance(e.value, FileNotFoundError)
    assert resolve_data_root(ESC50) == ESC50.resolve()
    monkeypatch.setenv("ESC50_ROOT", str(ESC50))
    assert resolve_data_root(None) == ESC50.resolve()
    monkeypatch.setenv("ESC50_ROOT", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="ESC50_ROOT"):
        resolve_data_root(None)
    monkeypatch.delenv("ESC50_ROOT")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="lmac-benchmark"):
        resolve_data_root(None)


def test_metadata(meta, tmp_path):
    assert len(meta) == 400 and list(meta.columns)[:7] == [
        "filename", "fold", "target", "category", "esc10", "src_file", "take"]
    assert meta["filename"].is_monotonic_increasing
    names = class_names(meta)
    assert len(names) == 50 and names[49] == "hand_saw"
    # a listed but missing file is reported
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    meta.head(3).to_csv(tmp_path / "meta" / "esc50.csv", index=False)
    with pytest.raises(FileNotFoundError, match="3 of 3"):
        load_metadata(tmp_path)


# ---- split ---------------------------------------------------------------------------

def test_partial_split_is_grouped_by_recording_stratified_and_disjoint(meta):
    s = make_split(meta, seed=0)
    assert (len(s.train), len(s.valid), len(s.evaluation)) == (257, 43, 100)
    parts = {"train": s.train, "valid": s.valid, "evaluation": s.evaluation}
    for a, b in (("train", "valid"), ("train", "evaluation"), ("valid", "evaluation")):
        assert not set(parts[a]["filename"]) & set(parts[b]["filename"])
        assert not set(parts[a]["src_file"]) & set(parts[b]["src_file"]), (a, b)  # no recording in two parts
    # every class is trained on; each class's share of clips follows 5/8, 1/8, 2/8 as its recordings allow
    assert s.train["target"].nunique() == 50
    assert s.evaluation["target"].value_counts().max() <= 4 and s.evaluation["target"].nunique() >= 45
    one_recording = meta.groupby("target")["src_file"].nunique().idxmin()  # a class cut from one recording
    assert meta.groupby("target")["src_file"].nunique().min() == 1
    assert (s.train["target"] == one_recording).sum() == 8  # all of it trains
    assert set(s.contaminant_pool["filename"]) == set(s.valid["filename"])
    assert "split by recording" in s.protocol
    assert s.describe()["recordings"] == {"train": 169, "valid": 43, "evaluation": 85, "contaminant_pool": 43}
    assert set(s.describe()["shared_recordings"].values()) == {0}
    # deterministic, independent of row order; another seed differs
    shuffled = meta.sample(frac=1.0, random_state=1)
    assert make_split(shuffled, seed=0).describe() == s.describe()
    assert make_split(meta, seed=1).describe()["files"] != s.describe()["files"]


def test_official_split():
    rows = [{"filename": f"{f}-{c}{k}-A-{c}.wav", "fold": f, "target": c, "category": f"class{c}",
             "esc10": False, "src_file": f"{f}{c}{k // 4}", "take": "A", "recording": f"{f}{c}{k // 4}"}
            for f in range(1, 6) for c in range(50) for k in range(8)]
    full = pd.DataFrame(rows)
    s = make_split(full, seed=3)
    assert set(s.train["fold"]) == {1, 2, 3} and len(s.train) == 1200
    assert set(s.valid["fold"]) == {4} and set(s.evaluation["fold"]) == {4}
    assert len(s.evaluation) == 400
    assert set(s.contaminant_pool["fold"]) == {5} and len(s.contaminant_pool) == 400
    assert s.protocol.startswith("official folds") and "same clips, as the authors'" in s.protocol
    # a recording whose clips sit in two folds would be seen in training and scored in evaluation
    leaking = full.copy()
    leaking.loc[leaking["fold"] == 4, "recording"] = leaking.loc[leaking["fold"] == 1, "recording"].to_numpy()
    with pytest.raises(ValueError, match="recordings in both the train and the valid part"):
        make_split(leaking, seed=3)


def test_metadata_rows_are_checked(tmp_path):
    lines = (ESC50 / "meta" / "esc50.csv").read_text().splitlines()
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").symlink_to(ESC50 / "audio")
    header, first, second = lines[0], lines[1], lines[2]
    bad_fold = first.split(",")
    bad_fold[1] = "x"
    for rows, message in (([first, ",".join(bad_fold)], "line 3: fold 'x' is not an integer"),
                          ([first, second, first], "is listed more than once (lines 2, 4)")):
        (tmp_path / "meta" / "esc50.csv").write_text("\n".join([header, *rows]) + "\n")
        with pytest.raises(ValueError, match=re.escape(message)):
            load_metadata(tmp_path)


# ---- contamination -------------------------------------------------------------------

def test_mix_numerics():
    n = 1000
    t = torch.arange(n, dtype=torch.float64)
    x = 3.0 * torch.sin(2 * np.pi * 5 * t / n)      # orthogonal to s over full periods
    s = 0.1 * torch.sin(2 * np.pi * 17 * t / n)
    assert abs(float(x @ s)) < 1e-9
    y = mix(x, s, 0.8, 0.2)
    assert torch.isclose(y.max(), torch.tensor(1.0, dtype=y.dtype))
    # projections onto the unit-norm sources recover the gains up to the peak factor
    a = float(y @ (x / x.norm()))
    b = float(y @ (s / s.norm()))
    assert a / b == pytest.approx(0.8 / 0.2)
    # before peak normalisation the norm is sqrt(0.8^2 + 0.2^2) (orthogonal parts)
    peak = 1.0 / (a / 0.8)
    assert float((y * peak).norm()) == pytest.approx(np.hypot(0.8, 0.2))
    # batched (B, N) equals row-wise
    xb, sb = torch.stack([x, 2 * x]), torch.stack([s, -s])
    yb = mix(xb, sb, 1.0, 0.5)
    for i in range(2):
        assert torch.allclose(yb[i], mix(xb[i], sb[i], 1.0, 0.5))
    assert torch.allclose(yb.amax(-1), torch.ones(2, dtype=yb.dtype))
    with pytest.raises(ValueError):
        mix(x, torch.zeros(n, dtype=x.dtype), 0.8, 0.2)


def test_draw_ood_mixtures(meta):
    s = make_split(meta, seed=0)
    d0 = draw_ood_mixtures(s.evaluation, s.contaminant_pool, seed=0)
    assert len(d0) == 200 and all(isinstance(c, ContaminatedSample) for c in d0)
    assert d0 == draw_ood_mixtures(s.evaluation, s.contaminant_pool, seed=0)
    assert d0 != draw_ood_mixtures(s.evaluation, s.contaminant_pool, seed=1)
    pool_target = dict(zip(s.contaminant_pool["filename"], s.contaminant_pool["target"]))
    for c in d0:
        row = s.evaluation.iloc[c.base_index]
        assert row["filename"] == c.base_file != c.contaminant_file
        assert pool_target[c.contaminant_file] != row["target"]
        assert (c.gain_x, c.gain_c, c.contamination) == (0.8, 0.2, "mixtures")
    assert [c.base_index for c in d0] == [i // 2 for i in range(200)]
    # two contaminants per clip are distinct files
    assert all(d0[2 * i].contaminant_file != d0[2 * i + 1].contaminant_file
               for i in range(100))
    # no self-mixing even when the pool is the evaluation set itself
    for c in draw_ood_mixtures(s.evaluation, s.evaluation, seed=0):
        assert c.base_file != c.contaminant_file
    # a real pair whose mixture has the larger negative peak: y / y.max() as the reference (§6)
    c = d0[0]
    assert (c.base_file, c.contaminant_file) == ("4-107122-A-33.wav", "4-211502-A-30.wav")
    x, s_ = load_clip(ESC50 / "audio" / c.base_file), load_clip(ESC50 / "audio" / c.contaminant_file)
    y = 0.8 * x / x.norm() + 0.2 * s_ / s_.norm()
    assert -y.min() > 1.2 * y.max()
    torch.testing.assert_close(c.apply(x, s_), y / y.max())
    torch.testing.assert_close(c.apply(x, s_, "absmax"), y / y.abs().max())
    assert c.apply(x, s_).shape == (CLIP_SAMPLES,) and c.apply(x, s_).min() < -1.2


def test_other_conditions_draws_and_gains(meta):
    s = make_split(meta, seed=0)
    speech_dir = ESC50.parent / "speech"
    files = sorted(str(p) for p in speech_dir.glob("*.wav"))
    speech = draw_from_files(s.evaluation, files, "speech", seed=0, per_clip=2)
    assert len(speech) == 200 and speech == draw_from_files(s.evaluation, files, "speech", seed=0, per_clip=2)
    assert speech != draw_from_files(s.evaluation, files, "speech", seed=1, per_clip=2)
    assert {(c.gain_x, c.gain_c) for c in speech} == {(0.8, 0.2)}
    noise = draw_from_files(s.evaluation, files, "noise", seed=0, per_clip=1)
    assert len(noise) == 100 and {(c.gain_x, c.gain_c) for c in noise} == {(1.0, 1.0)}
    with pytest.raises(ValueError):
        draw_from_files(s.evaluation, [], "speech", seed=0, per_clip=2)

    white = draw_white_noise(s.evaluation, seed=0)
    assert len(white) == 200 and len({c.noise_seed for c in white}) == 200
    x = load_clip(ESC50 / "audio" / white[0].base_file)
    n = white_noise(white[0].noise_seed, CLIP_SAMPLES)
    assert torch.equal(n, white_noise(white[0].noise_seed, CLIP_SAMPLES))  # rebuilt from the recorded seed
    y = white[0].apply(x, n)
    # y ∝ x/‖x‖ + 0.5·n/‖n‖: its projection on n/‖n‖ over the one on x/‖x‖ is ≈ 0.5 (x ⟂ n nearly)
    ratio = float(y @ (n / n.norm())) / float(y @ (x / x.norm()))
    assert ratio == pytest.approx(0.5, abs=0.02) and torch.isclose(y.max(), torch.tensor(1.0))

    clean = clean_samples(s.evaluation)
    assert len(clean) == 100 and torch.equal(clean[0].apply(x, None), x)


def test_data_folds_reads_only_those_folds_so_a_fuller_copy_gives_the_shared_copys_split(tmp_path):
    from datasets.sources import open_dataset
    shared = pd.read_csv(ESC50 / "meta" / "esc50.csv")
    other = shared.assign(fold=1, filename="1-" + shared["filename"].str[2:], src_file=shared["src_file"] + 10**7)
    (tmp_path / "meta").mkdir()
    (tmp_path / "audio").mkdir()
    pd.concat([other, shared]).to_csv(tmp_path / "meta" / "esc50.csv", index=False)
    for name, source in zip([*other["filename"], *shared["filename"]], [*shared["filename"], *shared["filename"]]):
        (tmp_path / "audio" / name).symlink_to(ESC50 / "audio" / source)
    fuller = open_dataset("esc50", str(tmp_path), seed=0, data_folds="4")
    expected = open_dataset("esc50", str(ESC50), seed=0)
    assert fuller.split.describe() == expected.split.describe()
    assert len(open_dataset("esc50", str(tmp_path), seed=0).split.train) != len(expected.split.train)
