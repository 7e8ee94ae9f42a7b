"""Explainers (BENCHMARK.md §3, §4): registry, grids, masks in [0, 1], failure guards, L-MAC parts."""
import pytest
import torch
from speechbrain.lobes.models.Cnn14 import CNN14PSI_stft

from benchmark.classifier import DomainModel
from benchmark.frontend import DOMAINS, stft
from methods import available_methods, build_explainer
from methods.base import Explainer, InvalidExplanationError, check_map, to_mask
from methods.lmac import LMACDecoder, lmac_loss


@pytest.fixture(scope="module", params=["listenable", "mel"])
def setting(request, clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS[request.param]).eval()
    features = model.domain.features(stft(clips))
    with torch.no_grad():
        target = model(features).argmax(1)
    return model, features, target


def test_registry_lists_the_builtin_methods_and_rejects_unknown_names():
    assert {"saliency", "lmac", "all-ones"} <= set(available_methods())
    with pytest.raises(KeyError, match="registered"):
        build_explainer("no-such-method")


def test_saliency_mask_on_the_grid_of_each_setting(setting):
    model, features, target = setting
    mask = build_explainer("saliency").mask(model, features, target)
    assert mask.shape == features.shape
    assert mask.min() >= 0 and mask.max() <= 1
    assert torch.allclose(mask.flatten(1).amax(1), torch.ones(2))  # per-sample max normalisation
    assert mask.std() > 0  # not constant
    torch.testing.assert_close(mask, build_explainer("saliency").mask(model, features, target))


def test_all_ones_mask(setting):
    model, features, target = setting
    assert (build_explainer("all-ones").mask(model, features, target) == 1).all()


def test_invalid_maps_fail_loudly(setting):
    _, features, _ = setting
    with pytest.raises(InvalidExplanationError, match="shape"):
        check_map(torch.empty(0), features, "m")  # Captum GuidedGradCam's failure mode
    with pytest.raises(InvalidExplanationError, match="shape"):
        check_map(features[:, :, :7], features, "m")
    with pytest.raises(InvalidExplanationError, match="NaN"):
        check_map(torch.full_like(features, float("nan")), features, "m")


def test_to_mask_takes_abs_and_per_sample_max():
    saliency_map = torch.tensor([[[-2.0, 1.0]], [[0.5, 0.25]]])
    torch.testing.assert_close(to_mask(saliency_map), torch.tensor([[[1.0, 0.5]], [[1.0, 0.5]]]))


def test_a_new_explainer_is_a_small_subclass(setting):
    class Energy(Explainer):
        def attribute(self, model, features, target):
            return features

    model, features, target = setting
    mask = Energy().mask(model, features, target)
    assert mask.shape == features.shape and mask.max() == 1


def test_lmac_decoder_is_speechbrains_layout(small_classifier):
    ours = LMACDecoder((64, 32, 16, 8), width=64)
    reference = CNN14PSI_stft(dim=64)
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
    features = torch.rand(2, 431, 80)
    _, representations = small_classifier.forward_with_representations(features)
    decoder = LMACDecoder(small_classifier.embedding_model.representation_channels, width=16)
    assert decoder(representations).shape == (2, 1, 425, 513)


def test_lmac_l1_term_batch_scaling(clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS["listenable"])
    features = model.domain.features(stft(clips))
    predicted = model(features).argmax(1)
    mask = torch.full((2, 425, 513), 0.25)
    nominal, terms = lmac_loss(model, mask, features, predicted, 0.0, 0.0, 0.4, l1_batch_scaled=False)
    scaled, _ = lmac_loss(model, mask, features, predicted, 0.0, 0.0, 0.4, l1_batch_scaled=True)
    assert terms["mask_mean"] == pytest.approx(0.25)
    assert nominal.item() == pytest.approx(0.4 * 0.25)
    assert scaled.item() == pytest.approx(2 * 0.4 * 0.25)  # batch of 2, as the reference
