"""Explainers (protocol §3, §4): registry, grids, masks in [0, 1], failure guards, L-MAC parts."""
import json

import pytest
import torch
from speechbrain.lobes.models.Cnn14 import CNN14PSI, CNN14PSI_stft

from classifiers.base import DomainModel
from classifiers.cnn14 import CNN14Classifier
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from methods import available_methods, build_explainer, build_explainers
from methods.base import Explainer, InvalidExplanationError, check_map, to_mask
from methods.lmac import lmac_loss
from methods.lmac_decoders import LMACDecoder


@pytest.fixture(scope="module", params=["listenable", "mel"])
def domain_inputs(request, clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS[request.param]).eval()
    features = model.features(clips)
    with torch.no_grad():
        target = model(features).argmax(1)
    return model, features, target


MAP_METHODS = ["saliency", "smoothgrad", "integrated-gradients", "gradcam", "guided-gradcam", "guided-backprop",
               "shap"]


def test_registry_lists_the_builtin_methods_and_rejects_unknown_names():
    assert set(MAP_METHODS + ["lmac", "all-ones"]) <= set(available_methods())
    with pytest.raises(KeyError, match="registered"):
        build_explainer("no-such-method")


@pytest.mark.parametrize("method", MAP_METHODS)
def test_map_methods_give_a_mask_on_the_grid_of_each_domain(method, domain_inputs):
    model, features, target = domain_inputs
    torch.manual_seed(0)
    mask = build_explainer(method).mask(model, features, target)
    assert mask.shape == features.shape
    assert mask.min() >= 0 and mask.max() <= 1
    assert torch.allclose(mask.flatten(1).amax(1), torch.ones(2))  # per-sample max normalisation
    assert (mask.flatten(1).std(1) > 0).all()  # neither empty nor constant
    torch.manual_seed(0)
    torch.testing.assert_close(mask, build_explainer(method).mask(model, features, target))  # seeded → same


def test_guided_backprop_is_not_the_plain_gradient(domain_inputs):
    model, features, target = domain_inputs
    guided = build_explainer("guided-backprop").mask(model, features, target)
    plain = build_explainer("saliency").mask(model, features, target)
    assert (guided - plain).abs().max() > 0.1


def test_smoothgrad_draws_fresh_noise_for_each_copy(domain_inputs, monkeypatch):
    model, features, target = domain_inputs
    draws = []
    original = torch.randn_like
    monkeypatch.setattr(torch, "randn_like", lambda x: draws.append(original(x)) or draws[-1])
    build_explainer("smoothgrad", n_samples=3).mask(model, features, target)
    assert len(draws) == 3 and not torch.equal(draws[0], draws[1])


def test_gradcam_is_block_constant_nearest_upsampling(domain_inputs):
    model, features, target = domain_inputs
    mask = build_explainer("gradcam").mask(model, features, target)
    assert all(m.unique().numel() <= 13 * 2 for m in mask)  # 13 × 2 block-6 cells, nearest-upsampled


def test_all_ones_mask(domain_inputs):
    model, features, target = domain_inputs
    assert (build_explainer("all-ones").mask(model, features, target) == 1).all()


def test_invalid_maps_fail_loudly(domain_inputs):
    _, features, _ = domain_inputs
    with pytest.raises(InvalidExplanationError, match="shape"):
        check_map(torch.empty(0), features, "m")  # Captum GuidedGradCam's failure mode
    with pytest.raises(InvalidExplanationError, match="shape"):
        check_map(features[:, :, :7], features, "m")
    with pytest.raises(InvalidExplanationError, match="NaN"):
        check_map(torch.full_like(features, float("nan")), features, "m")


def test_to_mask_takes_abs_and_per_sample_max():
    saliency_map = torch.tensor([[[-2.0, 1.0]], [[0.5, 0.25]]])
    torch.testing.assert_close(to_mask(saliency_map), torch.tensor([[[1.0, 0.5]], [[1.0, 0.5]]]))


def test_a_new_explainer_is_a_small_subclass(domain_inputs):
    class Energy(Explainer):
        def attribute(self, model, features, target):
            return features

    model, features, target = domain_inputs
    mask = Energy().mask(model, features, target)
    assert mask.shape == features.shape and mask.max() == 1


@pytest.mark.parametrize("domain, reference, bins", [("listenable", CNN14PSI_stft, 513), ("mel", CNN14PSI, 80)])
def test_lmac_decoders_are_speechbrains_layouts(domain, reference, bins, small_classifier):
    ours = LMACDecoder((64, 32, 16, 8), width=64, domain=domain)
    theirs = reference(dim=64)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    features = torch.rand(2, 431, 80)
    _, representations = small_classifier.forward_with_representations(features)
    channels = tuple(c for c, _, _ in small_classifier.representation_shapes(80000))
    decoder = LMACDecoder(channels, width=16, domain=domain)
    assert decoder(representations).shape == (2, 1, 425, bins)


def test_the_mel_decoder_learns_on_real_clips(tmp_path):
    """A few L-MAC steps in the mel domain on real clips: the loss falls and the mask is on the 80-band grid."""
    from datasets.audio import load_clips
    from foundation.profiles import PROFILES
    from methods.base import TrainingResources
    from tests.conftest import ESC50

    waves = load_clips(sorted((ESC50 / "audio").glob("4-1*.wav"))[:16])
    torch.manual_seed(0)
    classifier = CNN14Classifier([f"class {i}" for i in range(50)], width=2).eval().requires_grad_(False)
    profile = dict(PROFILES["tiny"], lmac_epochs=6, batch_size=8, lmac_lr=1e-2)
    resources = TrainingResources(classifier, "test", waves, torch.zeros(16, dtype=torch.long), None, tmp_path,
                                  profile, torch.device("cpu"), 0, domains=("mel",))
    lmac = build_explainer("lmac")
    lmac.fit(resources)
    history = json.loads(next(tmp_path.glob("lmac-mel-*.json")).read_text())["log"]["history"]
    assert history[-1]["loss"] < history[0]["loss"] - 0.05
    assert set(lmac.decoders) == {"mel"} and not list(tmp_path.glob("lmac-[0-9a-f]*.pt"))  # no listenable decoder
    model = DomainModel(classifier, DOMAINS["mel"])
    features = model.features(waves[:2])
    mask = lmac.mask(model, features, None)
    assert mask.shape == (2, 425, 80) and 0 <= mask.min() and mask.max() <= 1
    with pytest.raises(RuntimeError, match="no listenable decoder"):
        lmac.mask(DomainModel(classifier, DOMAINS["listenable"]), stft(waves[:1]).abs(), None)


def test_lmac_l1_term_batch_scaling(clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS["listenable"])
    features = model.features(clips)
    predicted = model(features).argmax(1)
    mask = torch.full((2, 425, 513), 0.25)
    nominal, terms = lmac_loss(model, mask, features, predicted, 0.0, 0.0, 0.4, l1_batch_scaled=False)
    scaled, _ = lmac_loss(model, mask, features, predicted, 0.0, 0.0, 0.4, l1_batch_scaled=True)
    assert terms["mask_mean"].item() == pytest.approx(0.25)
    assert nominal.item() == pytest.approx(0.4 * 0.25)
    assert scaled.item() == pytest.approx(2 * 0.4 * 0.25)  # batch of 2, as the reference


def test_l2i_masks_shrink_with_the_relevance_threshold(clips, small_classifier, tmp_path):
    from foundation.profiles import PROFILES
    from methods.base import TrainingResources

    resources = TrainingResources(small_classifier, "test", clips.repeat(4, 1), torch.tensor([49, 42] * 4), None,
                                  tmp_path, PROFILES["tiny"], torch.device("cpu"), 0, valid_waveforms=clips)
    # every component (relevance > -1) against those of positive relevance
    low = build_explainer("l2i", rth=-1.0, n_components=8, epochs=3)
    high = build_explainer("l2i", rth=0.0, n_components=8, epochs=3)
    low.fit(resources)
    high.fit(resources)  # loads the interpreter trained for the first (the threshold is not trained)
    assert len(list(tmp_path.glob("l2i-*.pt"))) == 1
    log = json.loads(next(tmp_path.glob("l2i-*.json")).read_text())["log"]
    agreements = [epoch["valid_agreement"] for epoch in log["history"]]
    assert len(agreements) == 3 and log["best_valid_agreement"] == max(agreements) == high.validation_agreement
    assert log["best_epoch"] == 1 + agreements.index(max(agreements))
    torch.testing.assert_close(low.interpreter.dictionary.norm(dim=0), torch.ones(8))  # unit-norm columns
    assert "validation clips" in high.notes()[0]
    model = DomainModel(small_classifier, DOMAINS["listenable"])
    features = model.features(clips)
    target = torch.tensor([3, 7])
    mask_low, mask_high = low.mask(model, features, target), high.mask(model, features, target)
    assert mask_low.shape == (2, 431, 513) and mask_low.min() >= 0 and mask_low.max() <= 1
    assert (mask_high <= mask_low + 1e-6).all() and mask_low.sum() > mask_high.sum() > 0


def test_a_list_valued_option_sweeps_rows():
    explainers = build_explainers(["l2i", "saliency"], {"l2i": {"rth": [0.2, 0.4], "n_components": 10}})
    assert [e.label for e in explainers] == ["l2i rth=0.2", "l2i rth=0.4", "saliency"]
    assert explainers[1].hyperparameters["rth"] == 0.4 and explainers[1].hyperparameters["n_components"] == 10


def test_lmac_fine_tuning_guidance_terms(clips, small_classifier):
    from methods.lmac import guidance_terms
    from metrics import binarised_spectrogram

    clean = log1p_magnitude(stft(clips))
    target = binarised_spectrogram(clean[:, :425])
    assert set(target.unique().tolist()) == {False, True}
    soft_oracle = target * 0.98 + 0.01
    bce, guided = guidance_terms(soft_oracle, clean, clean, cth=0.6, threshold=0.35)
    bce_flat, guided_flat = guidance_terms(torch.full_like(soft_oracle, 0.5), clean, clean, cth=0.6, threshold=0.35)
    assert (bce < bce_flat).all()  # the binarised clean spectrogram is the closest mask
    assert guided.tolist() == [1.0, 1.0] and guided_flat.tolist() == [1.0, 1.0]  # M⊙X ∝ X: cosine 1
    first_frames = torch.zeros_like(soft_oracle)
    first_frames[:, :10] = 1
    _, unguided = guidance_terms(first_frames, clean, clean, cth=0.6, threshold=0.35)
    assert unguided.tolist() == [0.0, 0.0]  # keeping 10 of 425 frames is far from the clean spectrogram

    model = DomainModel(small_classifier, DOMAINS["listenable"])
    predicted = model(clean).argmax(1)
    mask = torch.full((2, 425, 513), 0.25)
    loss, _ = lmac_loss(model, mask, clean, predicted, 0.0, 0.0, 0.4, True, l1_weights=torch.tensor([0.0, 1.0]))
    assert loss.item() == pytest.approx(0.4 * 0.25)  # guided samples skip the L1 term


def test_lmac_ft_starts_from_the_cached_lmac_decoder(clips, small_classifier, tmp_path):
    from foundation.profiles import PROFILES
    from methods.base import TrainingResources

    resources = TrainingResources(small_classifier, "test", clips.repeat(4, 1), torch.tensor([49, 42] * 4), None,
                                  tmp_path, PROFILES["tiny"], torch.device("cpu"), 0)
    lmac, tuned = build_explainer("lmac"), build_explainer("lmac-ft", guidance=16.0)
    lmac.fit(resources)
    tuned.fit(resources)
    assert len(list(tmp_path.glob("lmac-*.json"))) == 2  # lmac-<key> reused, lmac-ft-<key> added
    assert tuned.hyperparameters["guidance"] == 16.0 and tuned.hyperparameters["ft_epochs"] == 1
    model = DomainModel(small_classifier, DOMAINS["listenable"])
    features = model.features(clips)
    target = model(features).argmax(1)
    assert tuned.mask(model, features, target).shape == (2, 425, 513)
    assert not torch.equal(tuned.mask(model, features, target), lmac.mask(model, features, target))
