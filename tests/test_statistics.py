"""Confidence intervals, paired significance marks and the tables built from them."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark import tables
from benchmark.statistics import bootstrap_interval, holm, top_methods, worse_p_value


def test_a_constant_column_has_zero_width_and_an_empty_one_none():
    assert bootstrap_interval(np.full(200, 100.0), seed=0) == (100.0, 100.0)
    assert bootstrap_interval(np.array([0.3, np.nan, 0.3]), seed=0) == (0.3, 0.3)
    assert all(np.isnan(bootstrap_interval(np.array([np.nan, np.nan]), seed=0)))


def test_the_interval_covers_the_mean_of_normal_samples_at_its_level():
    rng = np.random.default_rng(1)
    intervals = [bootstrap_interval(rng.normal(3.0, 2.0, 60), seed=k) for k in range(150)]
    coverage = np.mean([low <= 3.0 <= high for low, high in intervals])
    assert 0.88 <= coverage <= 0.99  # nominal 95 % (the percentile bootstrap runs a little short at n = 60)
    low, high = bootstrap_interval(rng.normal(3.0, 2.0, 400), seed=0)
    half_width = stats.norm.ppf(0.975) * 2.0 / np.sqrt(400)  # the textbook interval's half-width, 0.196
    assert low < 3.0 < high and abs((high - low) / 2 - half_width) < 0.03


def test_the_interval_is_seeded():
    values = np.random.default_rng(0).exponential(1.0, 100)
    assert bootstrap_interval(values, seed=5) == bootstrap_interval(values, seed=5)
    assert bootstrap_interval(values, seed=5) != bootstrap_interval(values, seed=6)


def test_holm_against_hand_computed():
    # sorted p: 0.01 (×3 = 0.03), 0.03 (×2 = 0.06), 0.04 (×1 = 0.04 → monotone 0.06)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


def test_marks_on_a_constructed_case():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.2, 100)
    values = pd.DataFrame({
        "best": base + 0.10,
        "same": base + 0.10 + rng.normal(0, 0.01, 100),  # indistinguishable from the best
        "worse": base,  # 0.1 below on every sample: clearly worse
        "tied": base + 0.10,  # identical to the best: all differences 0
        "control": base + 0.50,  # higher than all, but a control is never the best
    })
    marks = top_methods(values, higher_is_better=True, candidates=["best", "same", "worse", "tied"])
    assert marks == {"best": True, "same": True, "worse": False, "tied": True, "control": True}
    # lower is better: the direction of the test flips
    lower = top_methods(-values, higher_is_better=False, candidates=["best", "same", "worse", "tied"])
    assert lower["best"] and not lower["worse"]
    # an all-equal column (AI = 0 everywhere): nothing is worse than anything
    zeros = pd.DataFrame({"a": np.zeros(50), "b": np.zeros(50)})
    assert top_methods(zeros, True, ["a", "b"]) == {"a": True, "b": True}
    assert worse_p_value(np.zeros(10), higher_is_better=True) == 1.0


def test_the_marks_use_only_the_samples_both_methods_have():
    values = pd.DataFrame({"a": [1.0, 2.0, 3.0, np.nan] * 10, "b": [0.0, 1.0, 2.0, 100.0] * 10})
    # b's mean is higher only through the samples a lacks (NaN: an invalid map); paired, b is worse
    assert top_methods(values, True, ["a", "b"]) == {"b": True, "a": True}
    assert top_methods(values[["a", "b"]].dropna(), True, ["a", "b"]) == {"a": True, "b": False}


def test_summarise_gives_means_intervals_and_marks_per_domain():
    rng = np.random.default_rng(0)
    rows = []
    for domain, shift in (("listenable", 0.0), ("mel", 0.3)):
        for method, offset in (("good", 0.2), ("bad", 0.0), ("all-ones", 0.6)):
            for i, value in enumerate(rng.normal(0.3 + offset + shift, 0.05, 40)):
                rows.append({"sample_id": i, "domain": domain, "method": method, "FF": value, "AI": 0.0,
                             "MM": 1.0, "SPS": np.nan if method == "all-ones" else 0.5})
    per_sample = pd.DataFrame(rows)
    order = [(d, m) for d in ("listenable", "mel") for m in ("good", "bad", "all-ones")]
    table = tables.summarise(per_sample, order, {"all-ones"}, seed=0)
    assert table["FF_top"].tolist() == [True, False, True] * 2  # the control is marked, never the best
    assert table["AI_top"].tolist() == [True] * 6 and table["MM_top"].isna().all()  # no direction: no mark
    assert (table["AI_ci_low"] == table["AI_ci_high"]).all()
    assert table["invalid_maps"].tolist() == [0, 0, 40] * 2
    means = per_sample.groupby(["domain", "method"], sort=False)["FF"].mean().to_numpy()
    assert np.allclose(table["FF"], means)
    assert ((table["FF_ci_low"] < table["FF"]) & (table["FF"] < table["FF_ci_high"])).all()
    shown = tables.cell_texts(table)
    assert shown.loc[0, "FF ↑"].startswith("**") and not shown.loc[1, "FF ↑"].startswith("**")
    assert "±" in shown.loc[1, "FF ↑"] and "textbf" in tables.cell_texts(table, latex=True).loc[0, "FF $\\uparrow$"]
