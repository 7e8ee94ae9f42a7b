"""Deletion / insertion curves on a hand-made classifier whose answer is known, and the ideal binary
mask of a real clip mixed with a real contaminant."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from benchmark.explanations import curve_probabilities
from datasets.audio import load_clip
from datasets.contamination import ContaminatedSample
from foundation.frontend import log1p_magnitude, log1p_mel, stft
from metrics import (
    CURVE_FRACTIONS,
    curve_area,
    first_bins,
    ideal_binary_mask,
    localisation_auc,
    localisation_mass,
    rank_bins,
)
from metrics.localisation import rank_auroc
from tests.conftest import DATA, ESC50

FRAMES, BINS, INFORMATIVE = 20, 10, (7, 3)

def localisation_scores(mask, target_dominated):
    return {"Loc-AUC": localisation_auc(mask, target_dominated), "Loc-mass": localisation_mass(mask, target_dominated)}


DOMAIN_FEATURES = {"listenable": log1p_magnitude, "mel": log1p_mel}  # CNN14's mel domain


class OneBinClassifier(nn.Module):
    """Two classes; the logit of class 0 is 10·x[7, 3] − 5: only one bin of the input matters."""

    def forward(self, features):
        logit = 10 * features[:, INFORMATIVE[0], INFORMATIVE[1]] - 5
        return torch.stack([logit, torch.zeros_like(logit)], 1)


def test_the_map_that_ranks_the_only_informative_bin_first_has_the_best_curves():
    features = torch.ones(1, FRAMES, BINS)
    model = OneBinClassifier()
    batch = SimpleNamespace(features=features, unmasked=SimpleNamespace(logits=model(features)))
    first, last = torch.rand(1, FRAMES, BINS) * 0.5, torch.rand(1, FRAMES, BINS) * 0.5
    first[0, INFORMATIVE[0], INFORMATIVE[1]] = 1.0  # ranked first
    last[0, INFORMATIVE[0], INFORMATIVE[1]] = -1.0  # ranked last
    flat = torch.ones(1, FRAMES, BINS)  # all ties: a random order
    curves = {name: curve_probabilities(model, mask, batch, seeds=[0])
              for name, mask in (("first", first), ("last", last), ("flat", flat))}
    scores = {name: {"Ins-AUC": curve_area(c["Ins"]), "Del-AUC": curve_area(c["Del"]), "Ins@1%": c["Ins"][:, 0]}
              for name, c in curves.items()}
    high, low = torch.sigmoid(torch.tensor(5.0)).item(), torch.sigmoid(torch.tensor(-5.0)).item()
    # kept alone, the informative bin gives the full probability at every k; removed, none is left
    assert scores["first"]["Ins-AUC"][0] == pytest.approx(high) and scores["first"]["Del-AUC"][0] == pytest.approx(low)
    assert scores["last"]["Ins-AUC"][0] == pytest.approx(low) and scores["last"]["Del-AUC"][0] == pytest.approx(high)
    assert scores["last"]["Ins-AUC"] <= scores["flat"]["Ins-AUC"] <= scores["first"]["Ins-AUC"]
    assert scores["first"]["Ins@1%"][0] == pytest.approx(high)


def test_ties_are_broken_at_random_but_seeded():
    flat = torch.zeros(2, FRAMES, BINS)
    ranking = rank_bins(flat, seeds=[1, 2])
    assert sorted(ranking[0].tolist()) == list(range(FRAMES * BINS))
    assert not torch.equal(ranking[0], ranking[1]) and torch.equal(ranking, rank_bins(flat, seeds=[1, 2]))
    kept = first_bins(ranking, 0.05, flat.shape)
    assert kept.sum(dim=(1, 2)).tolist() == [10.0, 10.0]  # ⌈5 % of 200⌉


def test_curve_area_is_the_mean_probability_over_k():
    assert curve_area(np.full((1, len(CURVE_FRACTIONS)), 0.7))[0] == pytest.approx(0.7)
    ramp = np.array([CURVE_FRACTIONS])  # p = k: area 0.49·(0.01 + 0.5)/2 / 0.49
    assert curve_area(ramp)[0] == pytest.approx((0.01 + 0.5) / 2)


@pytest.mark.parametrize("domain", ["listenable", "mel"])
def test_the_ideal_binary_mask_of_a_real_clip_mixed_with_real_speech(domain):
    clip, speech = load_clip(ESC50 / "audio" / "4-102844-A-49.wav"), load_clip(DATA / "speech" / "LJ050-0131.wav")
    sample = ContaminatedSample(0, "clip", "speech", 0.8, 0.2, "speech")
    target, contaminant = sample.components(clip, speech)
    # the terms are what the mixture sums (before its peak normalisation)
    mixture = sample.apply(clip, speech)
    assert torch.allclose(mixture, (target + contaminant) / (target + contaminant).max(), atol=1e-6)
    features = DOMAIN_FEATURES[domain]
    truth = ideal_binary_mask(features(stft(target[None])), features(stft(contaminant[None])))
    share = truth.double().mean().item()
    assert 0.5 < share < 0.99  # at 0.8 / 0.2 the clip dominates most, not all, bins
    louder = ContaminatedSample(0, "clip", "speech", 0.2, 0.8, "speech").components(clip, speech)
    assert ideal_binary_mask(*(features(stft(t[None])) for t in louder)).double().mean().item() < share

    scores = {name: localisation_scores(mask, truth) for name, mask in {
        "ideal": truth.float(), "inverse": (~truth).float(), "all-ones": torch.ones(truth.shape),
        "clean clip": features(stft(target[None])) / features(stft(target[None])).max(),
        "mixture": features(stft(mixture[None])) / features(stft(mixture[None])).max()}.items()}
    assert scores["ideal"]["Loc-AUC"].item() == 1.0 and scores["ideal"]["Loc-mass"].item() == 1.0
    assert scores["inverse"]["Loc-AUC"].item() == 0.0 and scores["inverse"]["Loc-mass"].item() == 0.0
    assert scores["all-ones"]["Loc-AUC"].item() == 0.5
    assert scores["all-ones"]["Loc-mass"].item() == pytest.approx(share)  # chance level = the share
    # the target's own spectrogram points at it; the mixture's (the energy control's map) much less
    assert scores["clean clip"]["Loc-AUC"].item() > 0.7 > scores["mixture"]["Loc-AUC"].item() > 0.5


def test_no_contaminant_no_localisation():
    scores = localisation_scores(torch.rand(2, 5, 4), None)
    assert torch.isnan(scores["Loc-AUC"]).all() and torch.isnan(scores["Loc-mass"]).all()
    assert ContaminatedSample(0, "clip", "", 1.0, 0.0, "clean").components(torch.ones(10), None) is None


@pytest.mark.parametrize("domain", ["listenable", "mel"])
def test_rank_auroc_equals_scikit_learn_on_real_maps_with_ties(domain):
    clip, speech = load_clip(ESC50 / "audio" / "4-102844-A-49.wav"), load_clip(DATA / "speech" / "LJ050-0131.wav")
    target, contaminant = ContaminatedSample(0, "clip", "speech", 0.8, 0.2, "speech").components(clip, speech)
    features = DOMAIN_FEATURES[domain]
    truth = ideal_binary_mask(features(stft(target[None])), features(stft(contaminant[None])))[0].flatten()
    mixture = features(stft((target + contaminant)[None]))[0].flatten()
    generator = torch.Generator().manual_seed(0)
    maps = {"energy": mixture / mixture.max(),
            "coarse (many ties)": torch.round(mixture / mixture.max() * 8) / 8,
            "binary": (torch.rand(truth.shape, generator=generator) > 0.5).float(),
            "constant": torch.ones(truth.shape), "ideal": truth.float()}
    for name, scores in maps.items():
        expected = roc_auc_score(truth.numpy(), scores.double().numpy())
        assert rank_auroc(scores, truth) == pytest.approx(expected, abs=1e-9), name
    assert np.isnan(rank_auroc(maps["energy"], torch.ones_like(truth)))
