"""The ground-truth track on real ESC-50 backgrounds: the generator (bytes, bins on both grids), the
reliance check (a classifier trained on shuffled labels is refused; the shipped one passes), the
metrics against the cue, and the metric agreement on a case whose answer is known."""
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from benchmark.agreement import agreement, write_agreement
from benchmark.cli import main
from benchmark.config import RunConfig
from benchmark.pipeline import evaluation_samples, prepare_batch
from benchmark.reliance import Reliance
from benchmark.reproduction import agrees, compare_per_sample
from classifiers.base import DomainModel
from classifiers.cnn14 import CNN14Classifier
from datasets import controlled
from datasets.audio import load_clip
from datasets.sources import open_dataset
from foundation.frontend import DOMAINS, HOP_LENGTH, N_FFT, SAMPLE_RATE, WIN_LENGTH, mel_filterbank
from metrics import distractor_mass, precision_at_truth_size
from tests.bad_input_files import META, esc50_tree
from tests.conftest import ESC50, ROOT


def small_esc50_copy(folder: Path, clips: int = 16) -> Path:
    """An ESC-50 layout with the first ``clips`` clips of the shared copy (``esc50_tree``: the audio linked)."""
    return esc50_tree(folder, META.sort_values("filename").head(clips))


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_draws(tmp_path):
    backgrounds = small_esc50_copy(tmp_path / "esc50")
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    controlled.generate(backgrounds, first, seed=3)
    controlled.generate(backgrounds, second, seed=3)
    controlled.generate(backgrounds, other, seed=4)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert len(files) == 17
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
    assert (first / controlled.META_FILE).read_bytes() != (other / controlled.META_FILE).read_bytes()
    assert controlled.dataset_key(backgrounds, 3) != controlled.dataset_key(backgrounds, 4)


def test_a_clip_is_its_background_plus_the_rebuilt_cue_and_distractor(tmp_path):
    backgrounds = small_esc50_copy(tmp_path / "esc50")
    controlled.generate(backgrounds, tmp_path / "set", seed=0)
    meta = controlled.load_metadata(tmp_path / "set")
    assert set(meta["target"]) <= set(range(len(controlled.CUE_CLASSES)))
    assert (meta["distractor_target"] != meta["target"]).all() and (meta["distractor_target"] >= 0).any()
    cues, distractors = controlled.planted_waveforms(meta)
    for k, row in enumerate(meta.itertuples()):
        clip, rate = sf.read(tmp_path / "set" / "audio" / row.filename, dtype="float32")
        assert rate == SAMPLE_RATE and clip.max() == 1.0
        background = load_clip(backgrounds / "audio" / row.background).double()
        rest = torch.from_numpy(clip).double() - cues[k].double() - distractors[k].double()
        scale = float(rest @ background / (background @ background))  # the clip's common peak normalisation
        assert torch.allclose(rest, scale * background, atol=1e-6)
        assert (distractors[k] == 0).all() == (row.distractor_target < 0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return open_dataset("controlled", str(ESC50), seed=0, cache_dir=tmp_path_factory.mktemp("cache"))


def stated_bins(low_hz: float, high_hz: float, onset_s: float, shape: tuple, mel: bool) -> torch.Tensor:
    """The bins a planted event occupies by its parameters: its frames (± half a window) × its frequencies
    (± the window's main lobe, 2·1024/372 STFT bins, and for a sweep ± what it sweeps in one window), or the
    mel bands whose triangles cover those STFT bins."""
    first = int((onset_s * SAMPLE_RATE - WIN_LENGTH / 2) // HOP_LENGTH)
    last = int(((onset_s + controlled.CUE_SECONDS) * SAMPLE_RATE + WIN_LENGTH / 2) // HOP_LENGTH) + 1
    swept = (high_hz - low_hz) / controlled.CUE_SECONDS * WIN_LENGTH / SAMPLE_RATE  # Hz within one window
    margin = int(np.ceil(2 * N_FFT / WIN_LENGTH + swept * N_FFT / SAMPLE_RATE))
    low, high = max(0, int(low_hz * N_FFT / SAMPLE_RATE) - margin), int(high_hz * N_FFT / SAMPLE_RATE) + margin + 1
    bins = torch.arange(N_FFT // 2 + 1)
    covered = (bins >= low) & (bins <= high)
    columns = (mel_filterbank()[covered] > 0).any(0) if mel else covered
    box = torch.zeros(shape, dtype=torch.bool)
    box[max(0, first):last + 1] = columns
    return box


@pytest.mark.parametrize("domain", ["listenable", "mel"])
def test_the_cue_and_the_distractor_land_in_their_stated_bins(dataset, domain):
    samples = evaluation_samples(RunConfig(dataset="controlled", setting="clean", limit=40), dataset)
    model = DomainModel(CNN14Classifier(dataset.class_names, width=2).eval(), DOMAINS[domain], per_sample=True)
    batch = prepare_batch(model, samples, list(range(40)), torch.device("cpu"))
    shape = batch.target_dominated.shape[1:]
    inside, sizes, with_distractor = [], [], 0
    for k, row in enumerate(dataset.split.evaluation.head(40).itertuples()):
        truth = batch.target_dominated[k]
        inside.append(float((truth & stated_bins(row.cue_hz, row.cue_hz, row.cue_onset_s, shape, domain == "mel"))
                            .sum() / truth.sum()))
        sizes.append(int(truth.sum()))
        distractor = batch.distractor_dominated[k]
        assert bool(distractor.any()) == (row.distractor_target >= 0)
        if row.distractor_target >= 0:
            with_distractor += 1
            box = stated_bins(row.distractor_low_hz, row.distractor_high_hz, row.distractor_onset_s, shape,
                              domain == "mel")
            assert float((distractor & box).sum() / distractor.sum()) > 0.8
            assert not (distractor & truth).all()
    assert min(inside) > 0.8 and np.mean(inside) > 0.9  # the rest: single bins where the noise floor dips
    frames = round(controlled.CUE_SECONDS * SAMPLE_RATE / HOP_LENGTH)  # 43 frames: a tone covers ≥ 1 bin in each
    assert min(sizes) >= frames and max(sizes) < 20 * frames
    assert with_distractor >= 10


def test_the_split_keeps_each_background_recording_in_one_part(dataset):
    split = dataset.split
    parts = [split.train, split.valid, split.evaluation]
    for a in range(3):
        for b in range(a + 1, 3):
            assert not set(parts[a]["recording"]) & set(parts[b]["recording"])
    assert dataset.class_names == list(controlled.CUE_CLASSES)
    assert split.evaluation["target"].value_counts().min() >= 10


def test_a_classifier_trained_on_shuffled_labels_is_refused_with_the_figures(tmp_path, capsys):
    code = main(["--dataset", "controlled", "--setting", "clean", "--data-root", str(ESC50), "--profile", "tiny",
                 "--shuffle-labels", "--limit", "2", "--methods", "saliency", "--domains", "listenable,mel",
                 "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache")])
    error = capsys.readouterr().err
    assert code == 2 and "Traceback" not in error
    assert "does not rely on the planted cue" in error and "trained with --shuffle-labels" in error
    for figure in ("listenable: accuracy", "mel: accuracy", "cue removed", "cue only", "n = 100"):
        assert figure in error
    assert not (tmp_path / "out" / "per_sample.csv").exists()


def test_shuffle_labels_is_refused_outside_the_controlled_dataset(tmp_path, capsys):
    assert main(["--dataset", "esc50", "--data-root", str(ESC50), "--shuffle-labels", "--out",
                 str(tmp_path / "out")]) == 2
    assert "--shuffle-labels" in capsys.readouterr().err


def test_precision_at_the_truths_size_shares_ties_evenly():
    truth = torch.zeros(1, 4, 5, dtype=torch.bool)
    truth[0, 1, :2] = True  # 2 of 20 bins
    exact = truth.double()
    half = torch.zeros(1, 4, 5)
    half[0, 1, 0] = 1.0
    half[0, 3, 4] = 1.0
    constant = torch.ones(1, 4, 5)
    values = [float(precision_at_truth_size(m, truth)) for m in (exact, half, constant)]
    assert values == pytest.approx([1.0, 0.5, 0.1])
    assert torch.isnan(precision_at_truth_size(exact, torch.zeros_like(truth))).all()


def test_distractor_mass_is_undefined_without_a_distractor():
    mask = torch.rand(2, 4, 5)
    distractor = torch.zeros(2, 4, 5, dtype=torch.bool)
    distractor[0, 0, 0] = True
    mass = distractor_mass(mask, distractor)
    assert float(mass[0]) == pytest.approx(float(mask[0, 0, 0] / mask[0].sum()))
    assert torch.isnan(mass[1])


def constructed_rows(samples: int = 30) -> pd.DataFrame:
    """Four methods whose ground-truth score rises with their index; AI and Del-AUC rank them as the truth
    does (Del-AUC: lower is better, falling with the index), AD in reverse (rising: worse), FF by chance."""
    rng = np.random.default_rng(0)
    rows = []
    for method in range(4):
        for sample in range(samples):
            noise = rng.normal(scale=0.05)
            rows.append({"domain": "listenable", "method": f"m{method}", "sample_id": sample,
                         "Loc-AUC": 0.5 + 0.1 * method + noise, "Cue-prec": 0.1 * method + noise,
                         "AI": method + noise, "Del-AUC": 1 - 0.2 * method + noise, "AD": 10 * method + noise,
                         "FF": rng.normal()})
    return pd.DataFrame(rows)


def test_agreement_on_a_case_with_a_known_answer(tmp_path):
    table = agreement(constructed_rows(), seed=0, resamples=200).set_index(["truth", "metric"])
    for truth in ("Loc-AUC", "Cue-prec"):
        assert table.loc[(truth, "AI"), ["tau", "ci_low", "ci_high"]].tolist() == [1.0, 1.0, 1.0]
        assert table.loc[(truth, "Del-AUC"), "tau"] == 1.0
        assert table.loc[(truth, "AD"), ["tau", "ci_low", "ci_high"]].tolist() == [-1.0, -1.0, -1.0]
        assert table.loc[(truth, "FF"), "ci_low"] < 0 < table.loc[(truth, "FF"), "ci_high"]
    assert set(table.index.get_level_values("metric")) == {"AI", "AD", "FF", "Del-AUC"}
    assert (table["methods"] == 4).all() and (table["n"] == 30).all()
    text = write_agreement(tmp_path, constructed_rows(), "constructed", seed=0)
    assert "## constructed — which metrics agree with the ground truth" in text
    assert "+1.00 [+1.00, +1.00] agrees" in text and "-1.00 [-1.00, -1.00] disagrees" in text
    written = pd.read_csv(tmp_path / "agreement.csv").set_index(["truth", "metric"])
    assert written.loc[("Loc-AUC", "AI"), "verdict"] == "agrees"
    assert written.loc[("Loc-AUC", "AD"), "verdict"] == "disagrees"
    assert written.loc[("Loc-AUC", "FF"), "verdict"] == "undecided"
    assert (tmp_path / "agreement.png").stat().st_size > 10_000


def test_a_changed_background_makes_another_dataset(tmp_path):
    backgrounds = small_esc50_copy(tmp_path / "esc50", clips=4)
    key = controlled.dataset_key(backgrounds, 0)
    first = sorted((backgrounds / "audio").iterdir())[0]
    target = first.resolve()
    first.unlink()
    shutil.copy(target, first)
    data, rate = sf.read(first)
    sf.write(first, data * 0.5, rate)
    assert controlled.dataset_key(backgrounds, 0) != key


def test_the_track_runs_end_to_end_with_the_shipped_classifier_and_gives_the_committed_rows(tmp_path):
    out = tmp_path / "out"
    assert main(["--dataset", "controlled", "--setting", "clean", "--data-root", str(ESC50), "--limit", "2",
                 "--methods", "saliency,all-ones,random", "--domains", "listenable,mel", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    record = json.loads((out / "run.json").read_text())
    assert [m["source"] for m in record["models"]] == ["shipped"]
    for check in record["reliance"]:
        assert Reliance(**check).failures == [] and check["n"] == 100
    rows = pd.read_csv(out / "per_sample.csv")
    assert rows[["Cue-prec", "Ins-AUC", "Loc-AUC"]].notna().all().all()  # the curves are always on here
    committed = pd.read_csv(ROOT / "results" / "controlled-clean-cpu" / "per_sample.csv")
    report = compare_per_sample(committed, rows)
    assert report["rows"] == 2 * 4 * 2 and agrees(report), report  # the energy control joins by default
    agreement_rows = pd.read_csv(out / "agreement.csv")
    assert len(agreement_rows) == 2 * 7 * 2 and (agreement_rows["methods"] == 4).all()
    assert "reliance on the cue" in (out / "table.md").read_text()
