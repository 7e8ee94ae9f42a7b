"""LMAC-TD (methods.lmac_td): the recipe's layout, the α mix, the loss terms, the waveform explanation through
the pipeline on real clips, and trained-model caching."""
import pytest
import torch
import torch.nn.functional as F

from benchmark.explanations import explain, score
from benchmark.pipeline import EvaluationSamples, prepare_batch
from classifiers.base import DomainModel
from datasets.contamination import ContaminatedSample
from foundation.frontend import DOMAINS, log1p_magnitude, stft
from foundation.profiles import PROFILES
from methods import build_explainer
from methods.base import TrainingResources, interpretation_mask
from methods.lmac_td import RepresentationDecoder, latent_frames, lmactd_loss, new_model

TINY = PROFILES["tiny"]["lmactd_sizes"]


def test_the_representation_decoder_is_the_recipes_layout(small_classifier, clips):
    # with channels (dim, dim/2, dim/4, dim/8) the weights are those of SpeechBrain's CNN14PSI_encoderdecoder
    decoder = RepresentationDecoder((64, 32, 16, 8), 64)
    expected = {"convt1": (64, 16, 7, 7), "convt2": (32, 16, 7, 7), "convt3": (16, 16, 12, 11),
                "convt4": (16, 16, 7, 7), "convt5": (16, 8, 7, 7), "convt6": (8, 8, 7, 11), "convt7": (8, 8, 4, 3),
                "convt8": (8, 4, 10, 7), "convt9": (4, 1, 8, 10)}
    assert {name: tuple(m.weight.shape) for name, m in decoder.named_children()} == expected
    # on CNN14's representations of a 5 s clip: the recipe's (B, 1, 11082, 256), cropped to the latent's 9,999 frames
    representations = small_classifier.forward_with_representations(small_classifier.features(clips)).representations
    channels = tuple(r.shape[1] for r in representations)
    out = RepresentationDecoder(channels, 32)(representations)
    assert out.shape == (2, 1, 11082, 256) and latent_frames(80000) == 9999


def test_mask_and_waveforms_on_real_clips(small_classifier, clips):
    torch.manual_seed(0)
    model = new_model(small_classifier, TINY, 0.75).eval()
    representations = small_classifier.forward_with_representations(small_classifier.features(clips)).representations
    with torch.no_grad():
        mask, x_in, x_out = model(clips, representations)
        latent = model.encoder(clips)
    assert mask.shape == (2, 16, 9999) and 0 <= mask.min() and mask.max() <= 1
    assert x_in.shape == x_out.shape == clips.shape and torch.isfinite(x_in).all()
    # the decoder is linear: x_in + x_out is the decoding of the whole latent
    whole = model.waveform(latent, clips.shape[1])
    assert torch.allclose(x_in + x_out, whole, atol=1e-5)


@pytest.mark.parametrize("alpha, changed, fixed", [(0.0, "representations", "waveform"),
                                                   (1.0, "waveform", "representations")])
def test_alpha_mix_chooses_what_the_masker_reads(alpha, changed, fixed, small_classifier, clips):
    torch.manual_seed(0)
    model = new_model(small_classifier, TINY, alpha).eval()
    representations = small_classifier.forward_with_representations(small_classifier.features(clips)).representations
    other = tuple(torch.roll(r, 1, dims=0) for r in representations)  # clip 1's representations for clip 0
    with torch.no_grad():
        base = model(clips, representations)[0]
        if changed == "representations":
            moved = model(clips, other)[0]  # α = 0: the masker reads the waveform's encoding alone
            assert torch.equal(base, moved)
            assert not torch.equal(base, model(clips.flip(1), representations)[0])
        else:
            moved = model(clips.flip(1), representations)[0]  # α = 1: the representations' decoding alone
            assert torch.equal(base, moved)
            assert not torch.equal(base, model(clips, other)[0])


def test_the_loss_terms_on_a_constructed_case(small_classifier, clips):
    model = DomainModel(small_classifier, DOMAINS["mel"]).eval()
    predicted = torch.tensor([3, 7])
    silence = torch.zeros_like(clips)
    weights = {"lambda_in": 5.0, "lambda_out": 0.2, "lambda_l1": 6.0, "lambda_rec": 0.0}
    loss, terms = lmactd_loss(model, clips, silence, clips, predicted, weights)
    ce_in = F.cross_entropy(small_classifier(small_classifier.features(clips)), predicted)
    ce_out = F.cross_entropy(small_classifier(small_classifier.features(silence)), predicted)
    l1 = log1p_magnitude(stft(clips)).mean()
    assert terms["ce_in"] == pytest.approx(float(ce_in), rel=1e-5)
    assert terms["ce_out"] == pytest.approx(float(ce_out), rel=1e-5)
    assert terms["l1"] == pytest.approx(float(l1), rel=1e-5)
    assert float(loss) == pytest.approx(5 * float(ce_in) - 0.2 * float(ce_out) + 6 * float(l1), rel=1e-5)
    # the SI-SNR term: x_in + x_out = x is a perfect reconstruction, far below a wrong one
    perfect = lmactd_loss(model, clips, silence, clips, predicted, {**weights, "lambda_rec": 1.0})[1]["rec"]
    wrong = lmactd_loss(model, clips.flip(1), silence, clips, predicted, {**weights, "lambda_rec": 1.0})[1]["rec"]
    assert perfect < -40 and wrong > 0


def test_interpretation_mask_is_the_clipped_ratio():
    features = torch.tensor([[[2.0, 0.0, 1.0]]])
    features_in = torch.tensor([[[1.0, 0.5, 3.0]]])
    assert torch.equal(interpretation_mask(features_in, features), torch.tensor([[[0.5, 0.0, 1.0]]]))


def test_trained_lmac_td_explains_through_the_pipeline_and_is_cached(small_classifier, clips, tmp_path,
                                                                     monkeypatch):
    resources = TrainingResources(small_classifier, "test", clips.repeat(4, 1), torch.tensor([49, 42] * 4), None,
                                  tmp_path, PROFILES["tiny"], torch.device("cpu"), 0, domains=("listenable", "mel"))
    explainer = build_explainer("lmac-td")
    explainer.fit(resources)
    assert explainer.hyperparameters["epochs"] == 1 and len(list(tmp_path.glob("lmac-td-*.pt"))) == 1
    samples = [ContaminatedSample(i, f"clip {i}", "", 1.0, 0.0, "clean") for i in range(len(clips))]
    evaluation = EvaluationSamples(samples, clips, {}, [49, 42])
    for domain, bins in (("listenable", 513), ("mel", 80)):
        model = DomainModel(small_classifier, DOMAINS[domain], per_sample=True).eval()
        batch = prepare_batch(model, evaluation, [0, 1], torch.device("cpu"))
        explanation = explain(model, explainer, batch, seed=0)
        assert explanation.mask.shape == (2, batch.features.shape[1], bins)
        assert 0 <= explanation.mask.min() and explanation.mask.max() <= 1
        x_in = explanation.waves[0]
        assert torch.equal(explanation.listenable(batch), x_in)  # what the WAVs and the report hold
        assert torch.allclose(explanation.mask, interpretation_mask(model.features(x_in), batch.features))
        scores = score(model, explanation, batch, ad_softmax_twice=True)
        assert set(scores) >= {"AI", "AD", "FF", "SPS", "MM"} and torch.isfinite(torch.as_tensor(scores["FF"])).all()
    # a second fit with the same resources loads the cached model: nothing trains
    monkeypatch.setattr(type(explainer), "_train", lambda *args: pytest.fail("trained again"))
    again = build_explainer("lmac-td")
    again.fit(resources)
    assert all(torch.equal(a, b) for a, b in zip(again.model.state_dict().values(),
                                                 explainer.model.state_dict().values()))
