"""SpeechBrain checkpoints (protocol §2, §4): the L-MAC recipe's paper-size Cnn14, linear head and
CNN14PSI_stft (listenable) and CNN14PSI (mel) decoders, saved in SpeechBrain's format, load here and give
the same logits, block representations and L-MAC masks on real clips."""
import pytest
import torch
from speechbrain.lobes.models.Cnn14 import CNN14PSI, Cnn14, CNN14PSI_stft

from benchmark.speechbrain_import import load_classifier_checkpoint, speechbrain_paper_checkpoints
from classifiers.base import DomainModel
from classifiers.cnn14 import CNN14Classifier
from foundation.frontend import DOMAINS
from methods import build_explainer
from methods.base import TrainingResources


@pytest.fixture(scope="module")
def speechbrain_checkpoints(tmp_path_factory):
    folder = speechbrain_paper_checkpoints(tmp_path_factory.mktemp("speechbrain"), n_classes=50)
    modules = (Cnn14(mel_bins=80, emb_dim=2048, return_reps=True), torch.nn.Linear(2048, 50), CNN14PSI_stft(dim=2048))
    for module, name in zip(modules, ("embedding_model", "classifier", "psi_model")):
        module.load_state_dict(torch.load(folder / f"{name}.ckpt", weights_only=True))
        module.eval()
    assert modules[0].state_dict()["norm0.running_var"].min() >= 0.5  # non-trivial BatchNorm statistics
    return (folder, *modules)


def test_logits_representations_and_mask_equal_speechbrains(speechbrain_checkpoints, clips):
    folder, embedding, head, psi = speechbrain_checkpoints
    classifier, _, names = load_classifier_checkpoint(folder)
    assert names is None and classifier.embedding_model.width == 64
    model = DomainModel(classifier, DOMAINS["listenable"]).eval()
    features = model.features(clips[:1])
    mel = model.model_input(features, None)
    with torch.no_grad():
        logits, representations = model.forward_with_representations(features)
        sb_embedding, sb_representations = embedding(mel)
        sb_logits = head(sb_embedding.squeeze(1))
        sb_mask = torch.sigmoid(psi(sb_representations)).squeeze(1)
    torch.testing.assert_close(logits, sb_logits, rtol=0, atol=1e-4)
    for ours, theirs in zip(representations, sb_representations):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)

    lmac = build_explainer("lmac", checkpoint=str(folder / "psi_model.ckpt"))
    lmac.fit(TrainingResources(classifier, "sb", torch.empty(0), torch.empty(0), None, folder, {},
                               torch.device("cpu"), 0))
    mask = lmac.mask(model, features, logits.argmax(1))
    assert mask.shape == (1, 425, 513)
    torch.testing.assert_close(mask, sb_mask, rtol=0, atol=1e-4)


def test_the_mel_decoder_equals_speechbrains_cnn14psi(clips, tmp_path):
    torch.manual_seed(1)
    # block channels 64, 32, 16, 8: CNN14PSI(dim=64)'s inputs
    classifier = CNN14Classifier([f"class {i}" for i in range(50)], width=2).eval()
    psi = CNN14PSI(dim=64).eval()
    with torch.no_grad():
        psi.convt8.weight.mul_(50)  # a mask far from the initial ≈ 0.5 everywhere
    torch.save(psi.state_dict(), tmp_path / "psi_mel_model.ckpt")
    model = DomainModel(classifier, DOMAINS["mel"]).eval()
    features = model.features(clips)
    with torch.no_grad():
        logits, representations = model.forward_with_representations(features)
        sb_mask = torch.sigmoid(psi(representations)).squeeze(1)
    lmac = build_explainer("lmac", mel_checkpoint=str(tmp_path / "psi_mel_model.ckpt"))
    lmac.check()
    lmac.fit(TrainingResources(classifier, "sb", torch.empty(0), torch.empty(0), None, tmp_path, {},
                               torch.device("cpu"), 0, domains=("mel",)))
    mask = lmac.mask(model, features, logits.argmax(1), representations)
    assert mask.shape == (2, 425, 80) and mask.std() > 0.01  # far from constant, compared at 1e-4
    torch.testing.assert_close(mask, sb_mask, rtol=0, atol=1e-4)
    swapped = build_explainer("lmac", checkpoint=str(tmp_path / "psi_mel_model.ckpt"))
    with pytest.raises(ValueError, match="--lmac-mel-checkpoint"):  # a mel decoder given for the listenable domain
        swapped.check()


def test_mismatched_checkpoints_name_the_tensor(speechbrain_checkpoints, tmp_path, small_classifier):
    folder, *_ = speechbrain_checkpoints
    lmac = build_explainer("lmac", checkpoint=str(folder / "psi_model.ckpt"))
    with pytest.raises(ValueError, match="convt1.weight"):  # a width-4 classifier has 128 block-6 channels
        lmac.fit(TrainingResources(small_classifier, "x", torch.empty(0), torch.empty(0), None, tmp_path, {},
                                   torch.device("cpu"), 0))
    (tmp_path / "embedding_model.ckpt").symlink_to(folder / "embedding_model.ckpt")
    torch.save({"weight": torch.zeros(50, 1024), "bias": torch.zeros(50)}, tmp_path / "classifier.ckpt")
    with pytest.raises(ValueError, match="'weight'"):
        load_classifier_checkpoint(tmp_path)
