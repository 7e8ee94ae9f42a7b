"""Evaluation conditions and datasets through the CLI (protocol §6), tiny profile, real clips:
ID noise, OOD speech / white noise, clean; UrbanSound8K in its official layout; a folder of recordings."""
import shutil

import pandas as pd
import pytest
import soundfile as sf

from benchmark.cli import main
from tests.conftest import DATA, ESC50

CLASSES = {"dog": 0, "rain": 10, "siren": 42}  # ESC-50 targets used to build small trees


def esc50_clips(category_target: int) -> list:
    meta = pd.read_csv(ESC50 / "meta" / "esc50.csv")
    return sorted(ESC50 / "audio" / f for f in meta.loc[meta["target"] == category_target, "filename"])


def run(tmp_path, *args):
    return main(["--profile", "tiny", "--limit", "2", "--methods", "saliency,all-ones", "--controls", "none",
                 "--cache-dir", str(tmp_path / "cache"), *args])


@pytest.mark.parametrize("args, contamination, per_clip", [
    (["--setting", "id", "--noise-dir", str(DATA / "noise")], "noise", 1),
    (["--setting", "ood", "--contamination", "speech", "--speech-dir", str(DATA / "speech")], "speech", 2),
    (["--setting", "ood", "--contamination", "white_noise"], "white_noise", 2),
    (["--setting", "clean"], "clean", 1),
])
def test_each_condition_on_esc50(tmp_path_factory, args, contamination, per_clip):
    root = tmp_path_factory.getbasetemp()  # one cache for the four runs
    out = root / contamination
    assert run(root, "--data-root", str(ESC50), "--out", str(out), *args) == 0
    per_sample = pd.read_csv(out / "per_sample.csv", keep_default_na=False)
    assert len(per_sample) == 2 * per_clip * 2 and set(per_sample["contamination"]) == {contamination}
    assert contamination.split("_")[0] in (out / "table.md").read_text().splitlines()[0]
    assert "classifier accuracy" in (out / "table.md").read_text().splitlines()[0]
    if contamination == "white_noise":
        assert per_sample["noise_seed"].nunique() == 4


@pytest.mark.parametrize("flag, what", [("--noise-dir", "noise"), ("--speech-dir", "speech")])
def test_missing_or_empty_contaminant_folders_exit_2(tmp_path, capsys, flag, what):
    setting = ["--setting", "id"] if what == "noise" else ["--setting", "ood", "--contamination", "speech"]
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "missing", tmp_path / "empty"):
        assert run(tmp_path, "--data-root", str(ESC50), "--out", str(tmp_path / "o"), *setting, flag,
                   str(folder)) == 2
        assert flag in capsys.readouterr().err


def test_unreadable_audio_exits_2_naming_the_file(tmp_path, capsys):
    folder = tmp_path / "mine"
    for name, target in CLASSES.items():
        (folder / name).mkdir(parents=True)
        for clip in esc50_clips(target):
            shutil.copy(clip, folder / name / clip.name)
    (folder / "dog" / "broken.wav").write_bytes(b"RIFF not really a wav file")
    # every part is read before training, wherever the split puts the broken file (all clips evaluated)
    assert run(tmp_path, "--dataset", "folder", "--data-root", str(folder), "--out", str(tmp_path / "o"),
               "--limit", "100") == 2
    assert "broken.wav" in capsys.readouterr().err


def test_urbansound8k_layout(tmp_path):
    """A small tree in UrbanSound8K's exact layout, made from real clips: 4 s, stereo, 48 kHz, 6 folds; the
    default folds are the authors' (train 1-3, valid 4, evaluation 5, mixtures from 6)."""
    root = tmp_path / "UrbanSound8K"
    rows = []
    for name, target in CLASSES.items():
        for i, clip in enumerate(esc50_clips(target)):
            fold = (1, 1, 2, 3, 4, 5, 6, 6)[i]
            audio, rate = sf.read(clip)
            (root / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
            slice_name = f"{100 + i}-{target}-0-{i}.wav"
            stereo = audio[: 4 * rate, None].repeat(2, axis=1)
            sf.write(root / "audio" / f"fold{fold}" / slice_name, stereo, rate)
            rows.append({"slice_file_name": slice_name, "fsID": 100 + i, "start": 0.0, "end": 4.0,
                         "salience": 1, "fold": fold, "classID": list(CLASSES).index(name), "class": name})
    (root / "metadata").mkdir()
    pd.DataFrame(rows).to_csv(root / "metadata" / "UrbanSound8K.csv", index=False)
    out = tmp_path / "out"
    assert run(tmp_path, "--dataset", "us8k", "--data-root", str(root), "--out", str(out)) == 0
    per_sample = pd.read_csv(out / "per_sample.csv")
    assert per_sample["clip"].str.startswith("fold5/").all()
    assert per_sample["contaminant"].str.startswith("fold6/").all()
    assert set(per_sample["label"]) <= {0, 1, 2} and len(per_sample) == 2 * 2 * 2
    assert "official folds: train 1-3, valid 4, evaluation 5, mixtures from 6" in (out / "table.md").read_text()
    out = tmp_path / "official-protocol"
    assert run(tmp_path, "--dataset", "us8k", "--data-root", str(root), "--folds", "1-4:5:6:5", "--out", str(out)) == 0
    assert pd.read_csv(out / "per_sample.csv")["clip"].str.startswith("fold6/").all()


def test_folder_of_recordings_with_and_without_labels(tmp_path):
    labelled = tmp_path / "labelled"
    for name, target in CLASSES.items():
        (labelled / name).mkdir(parents=True)
        for clip in esc50_clips(target):
            shutil.copy(clip, labelled / name / clip.name)
    out = tmp_path / "trained"
    assert run(tmp_path, "--dataset", "folder", "--data-root", str(labelled), "--setting", "clean",
               "--out", str(out)) == 0
    assert set(pd.read_csv(out / "per_sample.csv")["clip"].str.split("/").str[0]) <= set(CLASSES)

    flat = tmp_path / "flat"
    flat.mkdir()
    for clip in esc50_clips(CLASSES["rain"])[:2]:
        shutil.copy(clip, flat / clip.name)
    checkpoint = next((tmp_path / "cache").glob("classifier-*.pt"))
    out = tmp_path / "explained"
    assert run(tmp_path, "--dataset", "folder", "--data-root", str(flat), "--setting", "clean",
               "--classifier-checkpoint", str(checkpoint), "--out", str(out)) == 0
    per_sample = pd.read_csv(out / "per_sample.csv")
    assert sorted(per_sample["clip"].unique()) == sorted(p.name for p in flat.iterdir())
    assert (per_sample["label"] == -1).all()
    assert "n/a (unlabelled)" in (out / "table.md").read_text()
