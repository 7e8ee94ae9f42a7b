"""Perturbation explainers (Occlusion, Feature Ablation, LIME, Kernel SHAP via Captum) on real clips: shapes,
groups, baselines, a classifier whose answer is known, the refused settings and the count of model passes."""
import pytest
import torch
from torch import nn

from classifiers.base import Classifier, ClassifierPass, DomainModel
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from methods import build_explainer, to_mask
from methods.perturbation import budget_lines, evaluations_per_sample
from methods.registry import hyperparameters_of, parse_hyperparameter

METHODS = ["occlusion", "feature-ablation", "lime", "kernel-shap"]
FRAMES, BINS = slice(90, 108), slice(114, 171)  # segments 10–11 of 9 frames (100 ms), band 2 of 9 bands of 57 bins


class RectangleClassifier(Classifier):
    """Reads the listenable grid directly; logit 0 = sum of X over ``frames`` × ``bins``, logit 1 = its negative."""

    reads_stft = True

    def __init__(self, frames: slice = FRAMES, bins: slice = BINS):
        super().__init__(["rectangle", "not"])
        self.frames, self.bins = frames, bins
        self.anchor = nn.Parameter(torch.zeros(0))  # the model's device

    def features(self, waveform):
        return log1p_magnitude(stft(waveform))

    def listenable_features(self, log1p_stft):
        return log1p_stft

    def forward_with_representations(self, features):
        inside = features[:, self.frames, self.bins].sum((1, 2))
        return ClassifierPass(torch.stack([inside, -inside], 1), ())


@pytest.fixture(scope="module", params=["listenable", "mel"])
def domain_inputs(request, clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS[request.param], per_sample=True).eval()
    features = model.features(clips)
    with torch.no_grad():
        target = model(features).argmax(1)
    return model, features, target


@pytest.fixture(scope="module")
def rectangle(clips):
    model = DomainModel(RectangleClassifier(), DOMAINS["listenable"]).eval()
    return model, model.features(clips[:1]), torch.tensor([0])


def patch_sums(features: torch.Tensor, frames: int, bins: int) -> torch.Tensor:
    """Each bin's value: the sum of X over its frames × bins patch (patches from (0, 0), the last ones partial)."""
    padded = nn.functional.pad(features, (0, -features.shape[2] % bins, 0, -features.shape[1] % frames))
    sums = padded.unfold(1, frames, frames).unfold(2, bins, bins).sum((-1, -2))
    return sums.repeat_interleave(frames, 1).repeat_interleave(bins, 2)[:, :features.shape[1], :features.shape[2]]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_maps_real_clips_on_the_grid_of_each_domain(method, domain_inputs):
    model, features, target = domain_inputs
    sampled = method in ("lime", "kernel-shap")
    explainer = build_explainer(method, window=1000.0, **({"n_samples": 20} if sampled else {}))
    torch.manual_seed(0)  # 1 s = 86 frames: 6 segments, the last of 1 frame
    saliency_map = explainer.attribute(model, features, target)
    assert saliency_map.shape == features.shape and torch.isfinite(saliency_map).all()
    for k in range(2):  # constant over each segment (whole spectrum), and not one value for all of them
        values = [saliency_map[k, start:start + 86].unique() for start in range(0, 431, 86)]
        assert all(v.numel() == 1 for v in values) and len(torch.cat(values).unique()) > 3
    torch.manual_seed(0)
    mask = explainer.mask(model, features, target)
    assert mask.min() >= 0 and torch.allclose(mask.flatten(1).amax(1), torch.ones(2))
    torch.testing.assert_close(mask, to_mask(saliency_map))  # seeded → the same map


def test_occlusion_and_feature_ablation_give_the_same_map_of_100_ms_segments(domain_inputs):
    model, features, target = domain_inputs
    occlusion = build_explainer("occlusion").attribute(model, features[:1], target[:1])[0]
    torch.testing.assert_close(occlusion, build_explainer("feature-ablation").attribute(model, features[:1],
                                                                                       target[:1])[0])
    segments = [occlusion[start:start + 9].unique() for start in range(0, 431, 9)]  # 100 ms = 9 frames of 11.6 ms
    assert len(segments) == 48 and all(v.numel() == 1 for v in segments)  # the last one: frames 423–430
    assert len(torch.cat(segments).unique()) > 24


@pytest.mark.parametrize("method", ["occlusion", "feature-ablation"])
def test_the_map_is_the_logits_drop_on_the_patches_the_classifier_reads(method, rectangle):
    model, features, target = rectangle
    saliency_map = build_explainer(method, bands=9).attribute(model, features, target)
    inside = saliency_map[:, FRAMES, BINS].abs().sum() / saliency_map.abs().sum()
    assert inside > 0.95
    expected = torch.zeros_like(features)
    expected[:, FRAMES, BINS] = patch_sums(features, 9, 57)[:, FRAMES, BINS]
    torch.testing.assert_close(saliency_map, expected)


@pytest.mark.parametrize("method", ["lime", "kernel-shap"])
def test_the_surrogates_find_the_patch_the_classifier_reads(method, clips):
    model = DomainModel(RectangleClassifier(slice(86, 172), slice(171, 342)), DOMAINS["listenable"]).eval()
    features = model.features(clips[:1])  # 1 s = 86 frames: 6 segments (the last of 1 frame) × 3 bands of 171 bins
    torch.manual_seed(0)
    saliency_map = build_explainer(method, window=1000.0, bands=3).attribute(model, features, torch.tensor([0]))
    inside, drop = saliency_map[:, 86:172, 171:342], features[:, 86:172, 171:342].sum()
    assert inside.abs().sum() / saliency_map.abs().sum() > 0.95
    assert inside.unique().numel() == 1  # one group
    # a linear model: its Shapley values are exact; LIME's ridge (α = 1) shrinks the coefficient a little
    torch.testing.assert_close(inside[0, 0, 0], drop, rtol=1e-3 if method == "kernel-shap" else 0.05, atol=0)


def test_baselines_zeros_mean_and_seeded_noise(rectangle):
    model, features, target = rectangle
    mean = build_explainer("occlusion", baseline="mean")
    assert (mean.baseline(features) == features.mean()).all()
    noise = build_explainer("occlusion", baseline="noise")
    torch.manual_seed(1)
    drawn = noise.baseline(features)
    assert drawn.min() >= features.min() and drawn.max() <= features.max()
    assert abs(drawn.mean() - features.mean()) < 0.3 * features.std() and drawn.std() > 0.5 * features.std()
    assert (drawn - features).abs().mean() > 0.5 * features.std()  # not the clip itself
    torch.manual_seed(1)
    torch.testing.assert_close(noise.baseline(features), drawn)
    maps = {b: build_explainer("occlusion", bands=9, baseline=b).attribute(model, features, target)
            for b in ("zeros", "mean")}
    torch.testing.assert_close(maps["mean"], patch_sums(features - features.mean(), 9, 57) * (maps["zeros"] != 0))
    assert build_explainer("lime", baseline="noise").config()["baseline"] == "noise"  # recorded for run.json


@pytest.mark.parametrize("method, options, passes", [
    ("occlusion", {}, 1 + 6 * 3), ("feature-ablation", {}, 1 + 6 * 3),
    ("lime", {"n_samples": 30}, 30), ("kernel-shap", {"n_samples": 30}, 30)])
@pytest.mark.parametrize("per_eval", [1, 4])
def test_evaluations_count_the_classifiers_passes(method, options, passes, per_eval, rectangle):
    model, features, target = rectangle
    explainer = build_explainer(method, window=1000.0, bands=3, perturbations_per_eval=per_eval, **options)
    assert explainer.evaluations(model.grid(80000)) == passes
    calls = []
    original = model.classifier.forward_with_representations
    model.classifier.forward_with_representations = lambda x: calls.append(len(x)) or original(x)
    try:
        explainer.attribute(model, features, target)
    finally:
        del model.classifier.forward_with_representations
    assert sum(calls) == passes and (len(calls) == passes if per_eval == 1 else len(calls) < passes)


@pytest.mark.parametrize("method, key, value, message", [
    ("occlusion", "window", 99999.0, "--set occlusion.window=99999: a segment lasts more than 0 ms and at most the"),
    ("feature-ablation", "window", 0.0, "--set feature-ablation.window=0"),
    ("lime", "n_samples", 0, "--set lime.n_samples=0: lime needs at least one perturbed sample"),
    ("kernel-shap", "baseline", "silence", "--set kernel-shap.baseline=silence: unknown baseline; take one of zeros"),
    ("occlusion", "bands", 0, "--set occlusion.bands=0: must be an integer ≥ 1")])
def test_bad_settings_are_refused_by_the_constructor(method, key, value, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        build_explainer(method, **{key: value})


def test_bad_settings_for_the_grid_are_refused_naming_the_fix(rectangle):
    model, features, target = rectangle
    with pytest.raises(ValueError, match=r"window=100: a segment of 9 frames is longer than the input's 5 frames; "
                                         r"take a window ≤ 58 ms"):
        build_explainer("occlusion").attribute(model, features[:, :5], target)
    explainer = build_explainer("feature-ablation", bands=32)
    with pytest.raises(ValueError, match=r"bands=32: the 513 bins of the listenable grid do not make 32 bands of "
                                         r"ceil\(513 / 32\) bins; take bands=31 or 33"):
        explainer.attribute(model, features, target)
    with pytest.raises(ValueError, match="bands=600: the listenable grid has 513 bins, fewer than 600 bands; take "
                                         "bands ≤ 513"):
        build_explainer("lime", bands=600).evaluations((431, 513))
    with pytest.raises(ValueError, match="bands=2: the waveform domain has no frequency axis"):
        build_explainer("occlusion", bands=2).evaluations((250, 320), "waveform")
    assert build_explainer("occlusion", bands=80).evaluations((431, 80), "mel") == 1 + 48 * 80  # bands of 1 bin


def test_the_command_lines_keywords_and_ranges():
    assert list(hyperparameters_of(type(build_explainer("lime")))) == [
        "n_samples", "window", "bands", "baseline", "perturbations_per_eval"]
    with pytest.raises(ValueError, match=r"^--set lime.n_samples=0: 0 is out of range"):
        parse_hyperparameter("lime", "n_samples", "0")
    assert parse_hyperparameter("occlusion", "window", "250") == 250.0
    assert parse_hyperparameter("kernel-shap", "baseline", "noise") == "noise"


def test_evaluations_per_sample_and_the_budget_warning(small_classifier):
    explainers = [build_explainer("occlusion", bands=4), build_explainer("lime", n_samples=1000),
                  build_explainer("saliency"), build_explainer("integrated-gradients")]
    evaluations = evaluations_per_sample(explainers, small_classifier, ["listenable", "mel"])
    assert evaluations == {"occlusion": {"listenable": 1 + 48 * 4, "mel": 1 + 48 * 4},
                           "lime": {"listenable": 1000, "mel": 1000}}
    lines = budget_lines(evaluations, explainers, 10, ["listenable", "mel"], 2)
    # rest per sample and domain: 1 unmasked + 4 × 2 scoring + saliency 1 + integrated gradients 50
    assert lines[0] == ("occlusion: 193 (listenable) + 193 (mel) model passes a sample × 10 samples = 3860 passes; "
                        f"the rest of the run: about {10 * 2 * (1 + 8 + 1 + 50 + 1000)}")
    assert lines[1] == ("lime: 1000 (listenable) + 1000 (mel) model passes a sample × 10 samples = 20000 passes; "
                        f"the rest of the run: about {10 * 2 * (1 + 8 + 1 + 50 + 193)}")
    assert lines[2].startswith("warning: lime needs more model passes (20000) than the rest of the run (about 5060)")
    assert len(lines) == 3  # no warning for occlusion
