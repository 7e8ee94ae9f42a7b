"""The model-parameter randomisation check (protocol §8): the cascade, the similarities, the CLI."""
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.commands.sanity import level_names, map_similarity, randomised_copy
from classifiers.base import DomainModel
from foundation.frontend import DOMAINS
from methods import build_explainer
from tests.conftest import ESC50


def changed(original, randomised) -> set[str]:
    """Names of the state-dict entries (parameters and buffers) that differ."""
    before, after = original.state_dict(), randomised.state_dict()
    return {name for name in before if not torch.equal(before[name], after[name])}


def test_cascade_order(small_classifier):
    reference = {k: v.clone() for k, v in small_classifier.state_dict().items()}
    names_of_levels = level_names(small_classifier)
    assert names_of_levels == ["original", "block 6", "blocks 6–5", "blocks 6–4", "blocks 6–3", "blocks 6–2",
                               "blocks 6–1", "blocks 6–1 + head"]
    assert changed(small_classifier, randomised_copy(small_classifier, 0, seed=1)) == set()
    previous = set()
    for level in range(1, 8):
        randomised = randomised_copy(small_classifier, level, seed=1)
        names = changed(small_classifier, randomised)
        blocks = range(6, 6 - min(level, 6), -1)
        expected = {f"embedding_model.conv_block{b}.conv{c}.weight" for b in blocks for c in (1, 2)}
        if level == 7:
            expected |= {"head.weight", "head.bias"}
            assert torch.all(randomised.head.bias == 0.01)
        assert names == expected, names_of_levels[level]  # BatchNorm parameters and buffers untouched
        assert previous < names
        previous = names
    # cascading: block 6 keeps the same random weights at every level
    assert torch.equal(randomised_copy(small_classifier, 1, seed=1).embedding_model.conv_block6.conv1.weight,
                       randomised_copy(small_classifier, 7, seed=1).embedding_model.conv_block6.conv1.weight)
    assert all(torch.equal(v, reference[k]) for k, v in small_classifier.state_dict().items())
    with pytest.raises(ValueError, match="level 8"):
        randomised_copy(small_classifier, 8, seed=1)


def test_untouched_model_gives_identical_masks(small_classifier, clips):
    saliency = build_explainer("saliency")
    original = DomainModel(small_classifier, DOMAINS["listenable"]).eval()
    features = original.features(clips)
    target = original(features).argmax(1)
    masks = {level: saliency.mask(DomainModel(randomised_copy(small_classifier, level, seed=0), original.domain),
                                  features, target).double().numpy() for level in (0, 7)}
    reference = saliency.mask(original, features, target).double().numpy()
    for k in range(len(clips)):
        spearman, ssim, constant = map_similarity(reference[k], masks[0][k])
        assert (spearman, ssim, constant) == (pytest.approx(1.0), pytest.approx(1.0), False)
        spearman, ssim, constant = map_similarity(reference[k], masks[7][k])
        assert spearman < 0.9 and not constant


def test_constant_maps_are_counted_not_scored():
    rng = np.random.default_rng(0)
    varied = rng.random((20, 30))
    for original, randomised in ((varied, np.ones((20, 30))), (np.zeros((20, 30)), varied),
                                 (np.full((20, 30), 0.5), np.full((20, 30), 0.5))):
        spearman, ssim, constant = map_similarity(original, randomised)
        assert math.isnan(spearman) and math.isnan(ssim) and constant
    assert map_similarity(varied, varied) == (pytest.approx(1.0), pytest.approx(1.0), False)
    with pytest.raises(ValueError, match="same grid"):
        map_similarity(varied, varied[:10])


def test_cli(tmp_path, capsys, small_classifier):
    out = tmp_path / "out"
    argv = ["sanity", "--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "1",
            "--methods", "saliency,lmac", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(argv) == 0
    assert "Spearman" in capsys.readouterr().out
    per_sample = pd.read_csv(out / "sanity.csv")
    assert len(per_sample) == 2 * 2 * 8  # 2 samples × 2 methods × 8 levels
    assert list(per_sample.columns) == ["domain", "method", "level", "level_name", "sample_id", "spearman", "ssim",
                                        "constant_map"]
    assert per_sample.groupby(["method", "level"]).size().eq(2).all()
    assert list(per_sample.drop_duplicates("level")["level_name"]) == level_names(small_classifier)
    original = per_sample[(per_sample["level"] == 0) & ~per_sample["constant_map"]]
    assert np.allclose(original[["spearman", "ssim"]], 1.0)
    assert per_sample["spearman"].isna().eq(per_sample["constant_map"]).all()
    table = pd.read_csv(out / "sanity_table.csv")
    assert len(table) == 2 * 8 and (table["n"] + table["constant_maps"] == 2).all()
    assert "blocks 6–1 + head" in (out / "sanity.md").read_text()
    assert (out / "sanity.png").read_bytes()[:4] == b"\x89PNG"
    record = json.loads((out / "sanity.json").read_text())
    assert record["config"]["profile"] == "tiny" and "scipy" in record["versions"]
    assert not list(out.glob(".partial-*"))
    assert main(["sanity", "--limit", "0", "--out", str(out)]) == 2


def test_every_level_of_a_waveform_model_randomises_more_of_it():
    """Conv1d feature encoders, a weight-normed positional convolution and embeddings are re-drawn too."""
    from classifiers import classifier_class

    classifier = classifier_class("wav2vec2").build([f"class {i}" for i in range(50)], "tiny")
    before = classifier.state_dict()
    changed = [sum(not torch.equal(before[k], v) for k, v in randomised_copy(classifier, level, 0).state_dict().items())
               for level in range(len(classifier.randomisation_levels()) + 1)]
    assert changed[0] == 0 and all(a < b for a, b in zip(changed, changed[1:])), changed
    encoder = randomised_copy(classifier, len(changed) - 1, 0).model.wav2vec2.feature_extractor.conv_layers[0].conv
    assert not torch.equal(encoder.weight, classifier.model.wav2vec2.feature_extractor.conv_layers[0].conv.weight)
