"""Tests of metrics/ against hand-computed values and against Quantus."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from datasets.audio import load_clip
from foundation.frontend import stft as benchmark_stft
from metrics import (
    arrow,
    complexity,
    faithfulness_scores,
    mask_mean,
    paper_columns,
    registered_metrics,
    reported_metrics,
    sparseness,
    table_columns,
)
from tests.conftest import ESC50

LN3 = math.log(3)
EPS = 1e-7  # the Gini offset of Quantus Sparseness


def structure_scores(masks):
    return {"SPS": sparseness(masks), "COMP": complexity(masks), "MM": mask_mean(masks)}


def _t(rows):
    return torch.tensor(rows, dtype=torch.float64)


# --- catalogue ---------------------------------------------------------------

def test_catalogue():
    assert paper_columns() == ["AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM"]
    assert table_columns() == [*paper_columns(), "Ins-AUC", "Del-AUC", "Loc-AUC", "Loc-mass", "Cue-prec",
                               "Distractor-mass", "Max-Sens", "Avg-Sens", "RIS", "ROS"]
    assert [arrow(k) for k in reported_metrics()] == ["↑", "↓", "↑", "↑", "↑", "↑", "↓", "", "↓", "↑", "↓", "↑",
                                                      "↑", "↑", "↓", "↓", "↓", "↓", "↓"]
    metrics = registered_metrics()
    assert metrics["BCE-clean"].column == "note" and metrics["AI-margin"].column == "per-sample"
    assert all(m.source and m.description for m in metrics.values())


# --- faithfulness --------------------------------------------------------------
# Two-class batch, c = 1 for both samples.
# sample 0: p = [1/4, 3/4], p_in = [1/10, 9/10], p_out = [3/4, 1/4]
# sample 1: p = [1/4, 3/4], p_in = [3/4, 1/4],  p_out = p
LOGITS = _t([[0.0, LN3], [0.0, LN3]])
LOGITS_IN = _t([[0.0, math.log(9)], [LN3, 0.0]])
LOGITS_OUT = _t([[LN3, 0.0], [0.0, LN3]])
TARGET = torch.tensor([1, 1])


def test_faithfulness_hand_values():
    s = faithfulness_scores(LOGITS, LOGITS_IN, LOGITS_OUT, TARGET)
    assert set(s) == {"AI", "AD", "AG", "FF", "Fid-In"}
    expected = {
        "AI": [100.0, 0.0],                    # 0.9 > 0.75 ; 0.25 < 0.75
        "AG": [100 * 0.15 / 0.25, 0.0],        # = 60
        "FF": [0.75 - 0.25, 0.0],
        "Fid-In": [1.0, 0.0],
        # softmax twice on two classes: q_1 = sigmoid(p_1 - p_0).
        # sample 0: q_in_1 = sigmoid(0.8) > q_1 = sigmoid(0.5) -> 0.
        # sample 1: 100 (sigmoid(.5) - sigmoid(-.5)) / sigmoid(.5) = 100 (1 - e^-0.5)
        "AD": [0.0, 39.346934028736655],
    }
    for k, v in expected.items():
        assert s[k].dtype == torch.float64 and s[k].shape == (2,)
        torch.testing.assert_close(s[k], _t(v), rtol=0, atol=1e-9, msg=k)


def test_average_drop_single_softmax():
    s = faithfulness_scores(LOGITS, LOGITS_IN, LOGITS_OUT, TARGET, ad_softmax_twice=False)
    torch.testing.assert_close(s["AD"], _t([0.0, 100 * (0.75 - 0.25) / 0.75]), rtol=0, atol=1e-9)


def test_saturated_prediction():
    # p = [0, 0, 1] exactly in float64, p_in uniform: AG's 1 - p_c is 0 -> 0.
    logits, logits_in = _t([[0.0, 0.0, 1000.0]]), _t([[0.0, 0.0, 0.0]])
    s = faithfulness_scores(logits, logits_in, logits, torch.tensor([2]))
    assert s["AG"].item() == 0.0 and s["AI"].item() == 0.0 and s["FF"].item() == 0.0
    assert s["Fid-In"].item() == 0.0  # tie in p_in goes to class 0
    # twice: q_c = e/(2+e), q_in_c = 1/3
    assert s["AD"].item() == pytest.approx(100 * (1 - (2 + math.e) / (3 * math.e)), abs=1e-9)
    s1 = faithfulness_scores(logits, logits_in, logits, torch.tensor([2]), ad_softmax_twice=False)
    assert s1["AD"].item() == pytest.approx(100 * (1 - 1 / 3), abs=1e-9)


def test_average_drop_cap_with_50_classes():
    # p_c = 1, p_in one-hot on another class: q_c = e/(49+e), q_in_c = 1/(49+e)
    logits = torch.zeros(1, 50, dtype=torch.float32)
    logits[0, 7] = 1000.0
    logits_in = torch.zeros(1, 50)
    logits_in[0, 3] = 1000.0
    s = faithfulness_scores(logits, logits_in, logits_in, torch.tensor([7]))
    assert s["AD"].item() == pytest.approx(100 * (1 - 1 / math.e), abs=1e-9)
    assert s["FF"].item() == pytest.approx(1.0, abs=1e-12)
    s1 = faithfulness_scores(logits, logits_in, logits_in, torch.tensor([7]), ad_softmax_twice=False)
    assert s1["AD"].item() == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("bad", [
    dict(logits=_t([[0.0, 1.0, 2.0]])),                 # shape mismatch
    dict(logits_in=_t([[0.0, math.nan]])),              # NaN
    dict(target=torch.tensor([2, 0])),                  # class out of range
    dict(target=torch.tensor([1.0, 0.0])),              # not long
    dict(target=torch.tensor([1])),                     # wrong batch
])
def test_faithfulness_rejects_bad_input(bad):
    args = dict(logits=LOGITS, logits_in=LOGITS_IN, logits_out=LOGITS_OUT, target=TARGET)
    args.update(bad)
    with pytest.raises(ValueError):
        faithfulness_scores(**args)


# --- structure: hand values ----------------------------------------------------------

def test_structure_hand_values():
    masks = _t([
        [[0.0, 0.0], [0.0, 1.0]],      # one-hot
        [[0.5, 0.5], [0.5, 0.5]],      # constant
        [[-1.0, -1.0], [0.5, 0.5]],    # two values, signed: |M|/max = [1, 1, .5, .5]
        [[0.0, 0.0], [0.0, 0.0]],      # all zero: invalid
        [[0.0, math.nan], [0.0, 1.0]],  # NaN: invalid
        [[0.0, math.inf], [0.0, 1.0]],  # inf: invalid
    ])
    nan = math.nan
    # Gini weights (2i - n - 1) for n = 4: -3, -1, 1, 3 (they sum to 0, so the offset cancels
    # in the numerator but not in the denominator).
    sps = [3 / (4 * (1 + 4 * EPS)), 0.0, (-3 * .5 - .5 + 1 + 3) / (4 * (3 + 4 * EPS)), nan, nan, nan]
    comp = [0.0, math.log(4), 2 * (1 / 6) * math.log(6) + 2 * (1 / 3) * math.log(3), nan, nan, nan]
    mm = [0.25, 0.5, -0.25, 0.0, nan, math.inf]
    s = structure_scores(masks)
    for key, ref in (("SPS", sps), ("COMP", comp), ("MM", mm)):
        assert s[key].dtype == torch.float64 and s[key].shape == (6,)
        torch.testing.assert_close(s[key], _t(ref), rtol=0, atol=1e-12, equal_nan=True, msg=key)


def test_structure_is_per_sample_and_shape_agnostic():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(3, 7, 5, generator=g)
    masks[1] *= 1e-3  # per-sample normalisation: scale must not matter
    for f in (sparseness, complexity):
        batch = f(masks)
        torch.testing.assert_close(batch, torch.cat([f(m[None]) for m in masks]))
        torch.testing.assert_close(batch, f(masks[:, None]))           # (B, 1, T, F)
        torch.testing.assert_close(f(masks[1:2]), f(masks[1:2] * 1e3))
    assert mask_mean(masks).shape == (3,)


@pytest.mark.parametrize("bad", [torch.ones(4), torch.ones(0, 3), torch.ones(2, 0),
                                 torch.ones(2, 3, dtype=torch.cfloat)])
def test_structure_rejects_bad_shape(bad):
    with pytest.raises(ValueError):
        structure_scores(bad)


# --- structure: against Quantus on real spectrogram maps ---------------------------------

def _audio_maps() -> np.ndarray:
    """(5, 431, 513) float64 maps from a real ESC-50 clip at 16 kHz."""
    clip = load_clip(sorted((ESC50 / "audio").glob("*.wav"))[0])
    stft = benchmark_stft(clip.double())[0]                                   # (T, F)
    mag = stft.abs()
    maps = [mag, mag ** 2, torch.where(mag > mag.quantile(0.9), mag, 0.0), stft.real, torch.log1p(mag)]
    out = torch.stack(maps).numpy()
    assert out.shape == (5, 431, 513)
    return out


def test_sparseness_and_complexity_match_quantus():
    import quantus  # a test dependency (pyproject [test]): never skipped
    maps = _audio_maps()
    ours = structure_scores(torch.from_numpy(maps))
    for name, metric in (("SPS", quantus.Sparseness), ("COMP", quantus.Complexity)):
        q = metric(abs=True, normalise=True, disable_warnings=True, return_aggregate=False)
        ref = []
        for a in maps:  # batch size 1, as the reference evaluation
            a = a[None, None].copy()                                 # (1, 1, T, F) channel first
            ref += q(model=None, x_batch=np.zeros_like(a), y_batch=np.zeros(1, dtype=int),
                     a_batch=a, channel_first=True)
        ref = np.asarray(ref, dtype=np.float64)
        assert np.ptp(ref) > 0.05 * np.abs(ref).max()  # the maps really differ
        np.testing.assert_allclose(ours[name].numpy(), ref, rtol=1e-5, atol=0, err_msg=name)


USER_METRIC = '''
from metrics import Metric, register_metric

register_metric(Metric("Top-mass", True, "share of the mask's mass in its 10 % highest bins, in [0, 1]",
                       lambda inputs: inputs.mask.flatten(1).double().sort(1, descending=True).values[
                           :, : inputs.mask[0].numel() // 10].sum(1) / inputs.mask.flatten(1).double().sum(1),
                       "a test", column="added"))
'''


def test_a_user_metric_is_one_module_and_appears_in_the_rows_and_tables(tmp_path, monkeypatch):
    import metrics.base
    from benchmark.cli import main

    monkeypatch.setattr(metrics.base, "_REGISTRY", dict(metrics.base._REGISTRY))  # the test's registration only
    (tmp_path / "lmac_test_user_metric.py").write_text(USER_METRIC)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    assert main(["--import", "lmac_test_user_metric", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "1",
                 "--methods", "saliency", "--controls", "all-ones", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    assert rows["Top-mass"].between(0.09, 1).all()
    assert ((rows.loc[rows["method"] == "all-ones", "Top-mass"] - 0.1).abs() < 1e-3).all()
    table = pd.read_csv(out / "table.csv")
    assert "Top-mass" in table and "Top-mass_ci_low" in table
    markdown = (out / "table.md").read_text()
    assert "Top-mass ↑" in markdown and "Top-mass ↑: share of the mask's mass" in markdown
