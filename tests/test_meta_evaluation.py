"""The meta-evaluation after MetaQuantus (docs/meta-evaluation.md): the criteria on constructed metrics with a known
answer (noise is not resilient, a constant is not reactive, a faithful metric is both), the perturbations, the trust
rule, and one tiny command run on real data with the shipped CNN14."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.meta_evaluation import (
    criteria_of_draws,
    draw_criteria,
    iec_adversary,
    iec_resilience,
    p_value,
    perturb_weights,
    perturbed_features,
    summarise,
    trust_table,
)
from benchmark.reproduction import agrees, compare_per_sample
from tests.conftest import ESC50, ROOT

METHODS, SAMPLES, BINS, DRAWS = 4, 30, 256, 5
AGREEMENT = ROOT / "results" / "controlled-clean-cpu" / "agreement.csv"


def fidelity(maps: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """A faithful metric: Pearson correlation of each map with the relevance the model uses, (M, n) of (M, n, d)."""
    a = maps - maps.mean(-1, keepdims=True)
    b = truth - truth.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


METRICS = {"faithful": lambda maps, truth, rng: fidelity(maps, truth),
           "noise": lambda maps, truth, rng: rng.random(maps.shape[:2]),
           "constant": lambda maps, truth, rng: np.full(maps.shape[:2], 0.5)}


def constructed_draws(metric: str) -> pd.DataFrame:
    """``DRAWS`` draws of the criteria of one constructed metric: 4 methods whose maps are the true relevance plus
    noise of growing size (so a faithful metric ranks them); the resilience perturbation adds 1e-3 noise to each map,
    the adversary replaces it by the map of a re-drawn model (noise unrelated to the truth)."""
    rng = np.random.default_rng(0)
    truth = rng.random((SAMPLES, BINS))
    maps = truth + np.array([0.2, 0.4, 0.8, 1.6])[:, None, None] * rng.standard_normal((METHODS, SAMPLES, BINS))
    score = METRICS[metric]
    everyone = np.ones(SAMPLES, bool)
    rows = []
    for k in range(DRAWS):
        resilience = maps + 1e-3 * rng.standard_normal(maps.shape)
        adversary = rng.standard_normal(maps.shape)
        rows.append({"domain": "listenable", "metric": metric, "test": "input", "repetition": k, "methods": METHODS,
                     "kept": SAMPLES, "changed": SAMPLES,
                     **draw_criteria(score(maps, truth, rng), score(resilience, truth, rng), everyone,
                                     score(adversary, truth, rng), everyone, higher_is_better=True)})
    return pd.DataFrame(rows)


def verdicts(metric: str) -> dict:
    return summarise(constructed_draws(metric)).iloc[0].to_dict()


def test_a_metric_of_noise_is_not_resilient():
    row = verdicts("noise")
    assert not row["resilient"]
    assert row["IEC_NR"] == pytest.approx(1 / METHODS, abs=0.1)  # the ranks of noise: chance, 1/M
    assert row["IAC_NR_share"] > 0.5  # its distribution does not shift: IAC alone cannot tell noise from a metric
    assert not row["reactive"] and row["IEC_AR"] == pytest.approx(0.5, abs=0.1)


def test_a_constant_metric_is_resilient_but_not_reactive():
    row = verdicts("constant")
    assert row["resilient"] and (row["IAC_NR"], row["IEC_NR"]) == (1.0, 1.0)
    assert not row["reactive"] and (row["IAC_AR"], row["IEC_AR"], row["IAC_AR_share"]) == (0.0, 0.0, 0.0)
    assert row["MC"] == 0.5 and row["MC_sd"] == 0.0


def test_a_faithful_metric_is_resilient_and_reactive():
    row = verdicts("faithful")
    assert row["resilient"] and row["reactive"]
    assert row["IEC_NR"] == 1.0 and row["IEC_AR"] > 0.99 and row["IAC_AR"] > 0.99 and row["IAC_AR_share"] == 1.0
    assert row["MC"] > max(verdicts("noise")["MC"], verdicts("constant")["MC"])


def test_the_criteria_on_hand_made_scores():
    scores = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])  # 2 methods × 3 samples
    swapped = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 4.0]])  # sample 2's order reversed
    everyone = np.ones(3, bool)
    assert iec_resilience(scores, scores, everyone) == 1.0
    assert iec_resilience(scores, swapped, everyone) == pytest.approx(2 / 3)
    assert iec_resilience(scores, swapped, np.array([True, True, False])) == 1.0
    assert math.isnan(iec_resilience(scores, swapped, np.zeros(3, bool)))
    assert iec_adversary(scores, swapped, everyone, higher_is_better=True) == pytest.approx(1 / 6)  # 3 → 0 only
    assert iec_adversary(scores, swapped, everyone, higher_is_better=False) == pytest.approx(1 / 6)  # 1 → 4 only
    assert p_value(scores[0], scores[0]) == 1.0 and math.isnan(p_value([np.nan], [1.0]))
    assert p_value(np.zeros(5), np.arange(1, 6)) == pytest.approx(0.0625)  # 5 pairs cannot reject at 0.05
    assert p_value(np.zeros(6), np.arange(1, 7)) == pytest.approx(0.03125)
    criteria = draw_criteria(scores, scores, everyone, scores, np.zeros(3, bool), True)
    assert criteria["IAC_NR"] == 1.0 and math.isnan(criteria["IAC_AR"]) and math.isnan(criteria["MC"])


def test_the_draws_read_the_kept_and_changed_samples_of_each_condition():
    """8 samples, 2 methods: the adversary changes the prediction of samples 0–5 and lowers AI there only; MM (no
    direction) is left out; samples listed out of order are matched by id."""
    rows = []
    for test, level, repetition in (("none", "none", 0), ("input", "resilience", 0), ("input", "adversary", 0)):
        for method, base in (("saliency", 80.0), ("random", 20.0)):
            for i in reversed(range(8)):
                changed = level == "adversary" and i < 6
                rows.append({"domain": "listenable", "test": test, "level": level, "repetition": repetition,
                             "method": method, "sample_id": i, "predicted": 7 if changed else i,
                             "AI": base + i - (50.0 if changed else 0.0), "MM": 0.5})
    draw = criteria_of_draws(pd.DataFrame(rows)).iloc[0]
    assert (draw["metric"], draw["kept"], draw["changed"], draw["methods"]) == ("AI", 8, 6, 2)
    assert (draw["IAC_NR"], draw["IEC_NR"], draw["IEC_AR"]) == (1.0, 1.0, 1.0)
    assert draw["IAC_AR"] == pytest.approx(1 - 0.03125)  # 6 pairs, all lower: the exact two-sided p is 2/2^6
    assert len(criteria_of_draws(pd.DataFrame(rows))) == 1


def test_trust_needs_resilience_reactivity_and_no_disagreement_with_the_truth():
    draws = pd.concat([constructed_draws("faithful").assign(metric=name, test=test)
                       for name in ("AI", "FF", "SPS") for test in ("input", "model")], ignore_index=True)
    agreement = pd.read_csv(AGREEMENT)  # listenable: AI undecided with both truths, FF disagrees
    trust = trust_table(draws, summarise(draws), agreement)
    assert list(trust.columns[:3]) == ["domain", "metric", "accepted"]
    trust = trust.set_index("metric")
    assert trust.loc["AI", "agrees_with_truth"] == "undecided" and trust.loc["AI", "accepted"]
    assert trust.loc["FF", "agrees_with_truth"] == "disagrees" and not trust.loc["FF", "accepted"]
    assert trust.loc["SPS", "agrees_with_truth"] == "not measured" and trust.loc["SPS", "accepted"]
    noisy = pd.concat([draws, constructed_draws("noise").assign(metric="AG", test="model")], ignore_index=True)
    noisy = pd.concat([noisy, constructed_draws("faithful").assign(metric="AG", test="input")], ignore_index=True)
    judged = trust_table(noisy, summarise(noisy), None).set_index("metric")
    assert not judged.loc["AG", "resilient"] and not judged.loc["AG", "accepted"]  # one test failed suffices
    assert (judged["agrees_with_truth"] == "not measured").all()


def test_the_perturbations(small_classifier, clips):
    features = torch.rand(3, 20, 8)
    together = perturbed_features(features, 0.1, [1, 2, 3])
    assert torch.equal(together[1:], perturbed_features(features[1:], 0.1, [2, 3]))  # a draw is the sample's own
    assert not torch.equal(together, features) and (together >= 0).all()
    noisy = perturb_weights(small_classifier, 0.5, seed=1)
    before, after = dict(small_classifier.named_parameters()), dict(noisy.named_parameters())
    ratio = torch.cat([(after[n] / before[n]).flatten() for n in before if (before[n] != 0).all()])
    assert ratio.std().item() == pytest.approx(0.5, rel=0.1) and ratio.mean().item() == pytest.approx(1.0, abs=0.05)
    assert torch.equal(perturb_weights(small_classifier, 0.5, seed=1).head.weight, noisy.head.weight)
    assert all(torch.equal(a, b) for a, b in zip(small_classifier.buffers(), noisy.buffers()))


def test_the_command_on_real_data_with_the_shipped_cnn14(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["meta-evaluate", "--data-root", str(ESC50), "--limit", "1", "--repetitions", "2", "--methods",
                 "saliency", "--controls", "random", "--agreement", str(AGREEMENT), "--threads", "1",
                 "--cache-dir", str(tmp_path / "empty-cache"), "--out", str(out)]) == 0
    assert "Trust table" in capsys.readouterr().out
    scores = pd.read_csv(out / "meta_scores.csv")
    assert len(scores) == (1 + 2 * 2 * 2) * 2 * 2  # conditions (1 + tests × levels × K) × methods × samples
    unperturbed = scores[scores["level"] == "none"].drop(columns=["test", "level", "repetition"])
    report = compare_per_sample(pd.read_csv(ROOT / "results" / "esc50-ood-mixtures-cpu" / "per_sample.csv"),
                                unperturbed)
    assert report["rows"] == 4 and agrees(report), report  # the unperturbed condition is the run's scoring
    summary = pd.read_csv(out / "meta_evaluation.csv")
    metrics = ["AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "BCE-clean", "Loc-AUC", "Loc-mass"]
    assert set(summary["metric"]) == set(metrics) and len(summary) == 2 * len(metrics)  # MM has no direction
    assert (summary["kept"] == 2).all() and (summary["repetitions"] == 2).all()  # the resilience levels keep
    assert not summary["reactive"].any()  # 2 samples: no Wilcoxon test can reject
    trust = pd.read_csv(out / "trust.csv")
    assert list(trust.columns[:3]) == ["domain", "metric", "accepted"] and list(trust["metric"]) == metrics
    assert dict(zip(trust["metric"], trust["agrees_with_truth"]))["FF"] == "disagrees"
    assert not trust["accepted"].any()
    assert (trust["MC"].between(0, 1)).all()
    record = json.loads((out / "meta_evaluation.json").read_text())
    assert set(record["cost_s_per_sample_and_condition"]) == {"saliency", "random"}
    assert {m["source"] for m in record["models"]} == {"shipped"}
    assert (out / "meta_evaluation.png").read_bytes()[:4] == b"\x89PNG"
    assert "IEC_NR" in (out / "meta_evaluation.md").read_text()
