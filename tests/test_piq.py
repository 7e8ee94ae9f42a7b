"""PIQ (methods/piq.py, methods/piq_model.py): masks on real clips, the recipe's loss terms, training, caching."""
import json

import pytest
import torch
import torch.nn.functional as F

from classifiers.base import DomainModel
from foundation.frontend import DOMAINS
from foundation.profiles import PROFILES
from methods import build_explainer
from methods.base import TrainingResources
from methods.piq import PIQExplainer, piq_loss
from methods.piq_model import PIQInterpreter, upsampling_strides


def resources_for(classifier, waves, tmp_path, domains, noise=None, **profile):
    return TrainingResources(classifier, "test", waves, torch.zeros(len(waves), dtype=torch.long), noise, tmp_path,
                             dict(PROFILES["tiny"], **profile), torch.device("cpu"), 0, domains=domains)


@pytest.fixture(scope="module")
def real_waves():
    """8 real ESC-50 clips (fold 4)."""
    from datasets.audio import load_clips
    from tests.conftest import ESC50

    return load_clips(sorted((ESC50 / "audio").glob("4-1*.wav"))[:8])


def test_the_decoder_reaches_the_grid_with_the_recipes_stages():
    assert upsampling_strides((26, 32), (431, 513)) == [(2, 2)] * 4  # the recipe's classifier: four ×2 stages
    assert upsampling_strides((13, 2), (431, 513)) == [(4, 4), (2, 4), (2, 4), (2, 4)]  # CNN14's block 6
    assert upsampling_strides((100, 1), (100, 80)) == [(1, 4), (1, 4), (1, 2), (1, 2)]  # 64 bands, then resized
    interpreter = PIQInterpreter(8, (250, 1), (250, 80), width=4, codebook_size=16, n_classes=4)
    assert not interpreter.reduce  # an axis of one cell: no grid reduction
    logits, encoded, quantised = interpreter(torch.randn(2, 8, 250, 1), torch.tensor([0, 3]))
    assert logits.shape == (2, 1, 250, 80) and encoded.shape == quantised.shape == (2, 8, 250, 1)
    with pytest.raises(ValueError, match="codebook_size"):
        PIQInterpreter(8, (13, 2), (431, 80), width=4, codebook_size=3, n_classes=4)


def test_the_quantiser_takes_the_keys_of_the_class():
    interpreter = PIQInterpreter(4, (6, 4), (96, 64), width=2, codebook_size=8, n_classes=2).eval()
    keys = interpreter.codebook.embedding.weight  # keys 0-3: class 0, keys 4-7: class 1
    with torch.no_grad():
        keys.copy_(torch.arange(32.0).view(8, 4))
    encoded = keys[5].detach().view(1, 4, 1, 1).expand(1, 4, 3, 2)  # the encoder gives key 5
    st, quantised = interpreter.codebook.straight_through(encoded, torch.tensor([1]))
    assert torch.equal(quantised, encoded) and torch.equal(st, encoded)
    _, loss_terms = piq_loss(torch.zeros(1, 5, 3), torch.rand(1, 5, 3), encoded, quantised)
    assert loss_terms["commitment"] == 0 and loss_terms["codebook"] == 0  # on a key: no VQ loss
    _, other = interpreter.codebook.straight_through(encoded, torch.tensor([0]))
    assert torch.equal(other, keys[3].detach().view(1, 4, 1, 1).expand(1, 4, 3, 2))  # class 0's nearest key


def test_the_loss_terms_on_a_constructed_case(clips, small_classifier):
    model = DomainModel(small_classifier, DOMAINS["mel"])
    features = model.features(clips)
    predicted = model(features).argmax(1)
    encoded, quantised = torch.ones(2, 4, 3, 2), torch.zeros(2, 4, 3, 2)
    logits = torch.zeros(2, 425, 80)  # M = 0.5 everywhere: BCE log 2 whatever the target
    loss, terms = piq_loss(logits, features, encoded, quantised, beta=0.25, model=model, predicted=predicted,
                           lambda_fidelity=2.0)
    assert terms["reconstruction"].item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert terms["codebook"].item() == terms["commitment"].item() == 1.0
    expected_fidelity = F.cross_entropy(model(0.5 * features[:, :425]), predicted)
    assert terms["fidelity"].item() == pytest.approx(expected_fidelity.item(), rel=1e-5)
    assert loss.item() == pytest.approx(terms["reconstruction"].item() + 1.0 + 0.25 + 2.0 * expected_fidelity.item(),
                                        rel=1e-5)
    # the target is the binarised spectrogram: logits of its sign give a small BCE
    target = features >= 0.35 * features.flatten(1).amax(1).view(-1, 1, 1)
    close, _ = piq_loss(torch.where(target, 8.0, -8.0), features, encoded, quantised)
    far, _ = piq_loss(torch.where(target, -8.0, 8.0), features, encoded, quantised)
    assert close.item() == pytest.approx(2.0 + F.softplus(torch.tensor(-8.0)).item(), rel=1e-4) and far > close + 7


def test_masks_on_the_grid_of_each_domain(clips, small_classifier, tmp_path):
    resources = resources_for(small_classifier, clips, tmp_path, ("listenable", "mel"))
    piq = build_explainer("piq")
    piq.fit(resources)
    assert len(list(tmp_path.glob("piq-*.pt"))) == 2 and len(list(tmp_path.glob("piq-mel-*.pt"))) == 1  # one a domain
    assert piq.hyperparameters["width"] == PROFILES["tiny"]["piq_width"]
    assert piq.hyperparameters["codebook_size"] == 1024
    for domain, bins in (("listenable", 513), ("mel", 80)):
        model = DomainModel(small_classifier, DOMAINS[domain])
        features = model.features(clips)
        classifier_pass = model.forward_with_representations(features)
        predicted = classifier_pass.logits.argmax(1)
        mask = piq.mask(model, features, predicted, classifier_pass.representations)
        assert mask.shape == (2, 431, bins) and 0 <= mask.min() and mask.max() <= 1
        assert torch.equal(mask, piq.mask(model, features, None))  # its own pass, the predicted class
        assert not torch.equal(mask, piq.mask(model, features, (predicted + 25) % 50))  # the class's keys


def test_training_lowers_the_loss_on_real_clips(real_waves, tmp_path):
    from classifiers.cnn14 import CNN14Classifier

    torch.manual_seed(0)
    classifier = CNN14Classifier([f"class {i}" for i in range(50)], width=2).eval().requires_grad_(False)
    resources = resources_for(classifier, real_waves, tmp_path, ("mel",), piq_epochs=6, batch_size=4, piq_lr=1e-2)
    piq = build_explainer("piq")
    piq.fit(resources)
    assert not list(tmp_path.glob("piq-[0-9a-f]*.pt"))  # no listenable interpreter
    history = json.loads(next(tmp_path.glob("piq-mel-*.json")).read_text())["log"]["history"]
    assert len(history) == 6 and history[-1]["loss"] < history[0]["loss"] - 0.5
    assert history[-1]["reconstruction"] < history[0]["reconstruction"] - 0.05
    with pytest.raises(RuntimeError, match="no listenable interpreter"):
        piq.mask(DomainModel(classifier, DOMAINS["listenable"]), torch.rand(1, 431, 513), None)


def test_a_second_fit_loads_the_cached_interpreter(clips, small_classifier, tmp_path, monkeypatch):
    resources = resources_for(small_classifier, clips.repeat(2, 1), tmp_path, ("mel",), noise=clips.flip(0))
    first = build_explainer("piq")
    first.fit(resources)

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(PIQExplainer, "_train", no_training)
    second = build_explainer("piq")
    second.fit(resources)
    assert second.checkpoint_keys == first.checkpoint_keys and resources.models[-1]["source"] == "cache"
    model = DomainModel(small_classifier, DOMAINS["mel"])
    features = model.features(clips)
    assert torch.equal(first.mask(model, features, None), second.mask(model, features, None))
    with pytest.raises(AssertionError, match="trained again"):  # a changed hyperparameter trains anew
        build_explainer("piq", beta=0.25).fit(resources)


def test_mixtures_train_on_noisy_clips(clips, small_classifier, tmp_path, monkeypatch):
    import methods.piq

    mixed = []

    def spy(*args, **kwargs):
        for clean, noisy in methods.lmac.noisy_batches(*args, **kwargs):
            mixed.append(noisy)
            yield clean, noisy

    monkeypatch.setattr(methods.piq, "noisy_batches", spy)
    resources = resources_for(small_classifier, clips.repeat(2, 1), tmp_path, ("mel",), noise=clips.flip(0))
    build_explainer("piq").fit(resources)
    assert not mixed  # the recipe's clean clips
    build_explainer("piq", mixtures=True).fit(resources)
    assert len(mixed) == 1 and mixed[0].shape == (4, 80000)
    assert len(list(tmp_path.glob("piq-mel-*.pt"))) == 2
