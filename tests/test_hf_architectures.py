"""Every architecture of ``transformers``' audio-classification mapping behind the classifier contract (the
AST is tested in test_classifiers.py, Whisper in test_whisper.py): a tiny random model of each, saved
offline with its feature extractor, loads through ``hf:``, gives time grids and a GradCAM layer, keeps the
plain model's logits on real clips, and runs saliency, GradCAM and L-MAC through the command line in both
of its domains; the features equal the feature extractors'; a model or extractor that does not fit is
refused with the fix named."""
from pathlib import Path

import pandas as pd
import pytest
import torch
from transformers.models.auto.modeling_auto import MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES

from benchmark.cli import main
from classifiers import DomainModel
from classifiers.huggingface import FAMILIES, load
from foundation.frontend import DOMAINS
from tests.conftest import ESC50, ESC50_CLASSES

EXPLAINED_HERE = [model_type for model_type in MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES
                  if model_type not in ("whisper", "audio-spectrogram-transformer")]
"""The mapping's types tested here: the wav2vec2 family and Wav2Vec2-BERT."""

FEATURE_TOLERANCE = {"wav2vec2": 1e-6, "wav2vec2-bert": 2e-5}
"""Largest |ours − extractor's| allowed of the model input on the two real clips (measured: 3.0e-8 for the
normalised waveform, values up to 8; 5.6e-6 for Wav2Vec2-BERT's normalised, stacked filterbank, 1.9e-6 before
normalisation on log energies of 7–27, computed in float64 as the extractor computes)."""


def tiny_config(model_type: str, **changes):
    """A random config of ``model_type`` small enough for a test: hidden 16, 2 layers, 2 heads, 8-channel
    convolutions, 50 outputs named as ESC-50's classes in target order."""
    from transformers import AutoConfig

    sizes = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32, layerdrop=0.0,
                 mask_time_prob=0.0, classifier_proj_size=16, num_labels=len(ESC50_CLASSES),
                 id2label=dict(enumerate(ESC50_CLASSES)), label2id={n: i for i, n in enumerate(ESC50_CLASSES)})
    defaults = AutoConfig.for_model(model_type)
    if hasattr(defaults, "conv_dim"):  # a convolutional feature encoder (7 layers; 13 in SEW and SEW-D)
        sizes.update(conv_dim=(8,) * len(defaults.conv_dim), num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=2)
    if hasattr(defaults, "conv_depthwise_kernel_size"):  # the conformers
        sizes.update(conv_depthwise_kernel_size=3)
    return AutoConfig.for_model(model_type, **{**sizes, **changes})


def own_extractor(model_type: str):
    from transformers import SeamlessM4TFeatureExtractor, Wav2Vec2FeatureExtractor

    if model_type == "wav2vec2-bert":
        return SeamlessM4TFeatureExtractor()
    return Wav2Vec2FeatureExtractor(do_normalize=True)


def save_tiny(folder: Path, model_type: str, extractor=None) -> Path:
    """A tiny untrained ``AutoModelForAudioClassification`` of ``model_type`` and its feature extractor (or
    ``extractor``) written with ``save_pretrained`` to ``folder`` (built from a config: nothing downloaded)."""
    from transformers import AutoModelForAudioClassification

    torch.manual_seed(0)
    AutoModelForAudioClassification.from_config(tiny_config(model_type)).save_pretrained(folder)
    (extractor or own_extractor(model_type)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """model_type → the folder of its tiny model, saved on first use."""
    folders: dict[str, Path] = {}

    def folder(model_type: str) -> Path:
        if model_type not in folders:
            folders[model_type] = save_tiny(tmp_path_factory.mktemp("hf") / model_type, model_type)
        return folders[model_type]

    return folder


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """A folder of two ESC-50 recordings: ``--dataset folder`` with a given classifier evaluates them and trains
    the interpreters on them (the ESC-50 split would train L-MAC on 257 clips: ~4 min per model here)."""
    folder = tmp_path_factory.mktemp("recordings")
    for name in ("4-102844-A-49.wav", "4-102871-A-42.wav"):
        (folder / name).symlink_to(ESC50 / "audio" / name)
    return folder


def extractor_inputs(extractor, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
    """The feature extractor's model inputs for (B, N) waveforms at 16 kHz."""
    return dict(extractor([w.numpy() for w in waveforms], sampling_rate=16000, return_tensors="pt"))


def assert_close_relative(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    """Logits equal within 1e-4 of the largest (a random tiny model's logits are ~1e-2, SEW's ~2e-4; measured
    differences: ≤ 8.4e-9, relative ≤ 1e-6)."""
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4 * theirs.abs().max().item())


def test_the_mapping_is_every_family_tested_here_and_elsewhere():
    assert set(FAMILIES) == set(MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES)
    assert len(EXPLAINED_HERE) == 10


@pytest.mark.parametrize("model_type", EXPLAINED_HERE)
def test_each_architecture_loads_with_time_grids_and_keeps_the_plain_models_logits(model_type, saved, clips):
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    classifier = load(str(saved(model_type)))
    assert classifier.class_names == ESC50_CLASSES
    steps = 124 if model_type.startswith("sew") else 249  # 20 ms steps (40 ms inside SEW and SEW-D)
    assert classifier.representation_shapes(80000) == [(16, steps, 1)] * 2
    assert {"representations", "cam_layer"} <= classifier.capabilities()
    plain = AutoModelForAudioClassification.from_pretrained(saved(model_type)).eval()  # no hooks
    with torch.no_grad():
        theirs = plain(**extractor_inputs(AutoFeatureExtractor.from_pretrained(saved(model_type)), clips)).logits
        ours = classifier.forward_with_representations(classifier.features(clips))
    assert_close_relative(ours.logits, theirs)
    assert [tuple(r.shape) for r in ours.representations] == [(2, 16, steps, 1)] * 2
    levels = classifier.randomisation_levels()
    assert levels[0][0] == "head" and len(levels) == 4 and all(modules for _, modules in levels)
    assert classifier.describe()["model_type"] == model_type


@pytest.mark.parametrize("model_type", EXPLAINED_HERE)
def test_each_architecture_runs_saliency_gradcam_and_lmac_in_both_its_domains(model_type, saved, recordings,
                                                                             tmp_path):
    domain = "mel" if model_type == "wav2vec2-bert" else "waveform"
    assert load(str(saved(model_type))).feature_domain == domain
    out = tmp_path / "out"
    assert main(["--classifier", f"hf:{saved(model_type)}", "--dataset", "folder", "--data-root", str(recordings),
                 "--setting", "clean", "--methods", "saliency,gradcam,lmac", "--controls", "none", "--domains",
                 f"listenable,{domain}", "--profile", "tiny", "--limit", "1", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    assert set(zip(rows["domain"], rows["method"])) == {(d, m) for d in ("listenable", domain)
                                                        for m in ("saliency", "gradcam", "lmac")}
    assert len(rows) == 6 and torch.isfinite(torch.tensor(rows[["AI", "FF"]].to_numpy())).all()


@pytest.mark.parametrize("do_normalize", [True, False])
def test_wav2vec2_family_input_equals_the_feature_extractors_on_real_clips(saved, clips, do_normalize):
    from transformers import Wav2Vec2FeatureExtractor

    classifier = load(str(saved("wav2vec2")))
    classifier.extractor_settings["do_normalize"] = do_normalize
    features = classifier.features(clips)
    assert features.shape == (2, 250, 320)  # 20 ms frames
    theirs = extractor_inputs(Wav2Vec2FeatureExtractor(do_normalize=do_normalize), clips)["input_values"]
    ours = classifier.model_input(features)
    assert ours.shape == theirs.shape == (2, 80000)
    assert (ours - theirs).abs().max().item() < FEATURE_TOLERANCE["wav2vec2"]


def test_wav2vec2_bert_features_equal_the_seamless_m4t_extractors_on_real_clips(saved, clips):
    from transformers import SeamlessM4TFeatureExtractor

    classifier = load(str(saved("wav2vec2-bert")))
    features = classifier.features(clips)
    assert features.shape == (2, 498, 80)  # the mel domain: 10 ms frames × 80 bands, before normalisation
    unstacked = SeamlessM4TFeatureExtractor(stride=1)(list(clips.numpy()), sampling_rate=16000, return_tensors="pt",
                                                      do_normalize_per_mel_bins=False)["input_features"]
    assert (features - unstacked).abs().max().item() < 1e-5
    theirs = extractor_inputs(SeamlessM4TFeatureExtractor(), clips)["input_features"]
    ours = classifier.model_input(features)
    assert ours.shape == theirs.shape == (2, 249, 160)
    assert (ours - theirs).abs().max().item() < FEATURE_TOLERANCE["wav2vec2-bert"]


def test_wav2vec2_bert_drops_an_odd_last_frame_as_the_extractors_padding_and_mask_do(saved, clips):
    """497 frames: the extractor pads a zero frame and masks that step out; the model's output is ours."""
    from transformers import AutoModelForAudioClassification, SeamlessM4TFeatureExtractor

    short = clips[:, :79840]
    classifier = load(str(saved("wav2vec2-bert")))
    assert classifier.features(short).shape == (2, 497, 80)
    inputs = extractor_inputs(SeamlessM4TFeatureExtractor(), short)
    assert inputs["input_features"].shape == (2, 249, 160) and not inputs["attention_mask"][:, -1].any()
    plain = AutoModelForAudioClassification.from_pretrained(saved("wav2vec2-bert")).eval()
    with torch.no_grad():
        assert_close_relative(classifier(classifier.features(short)), plain(**inputs).logits)


def test_wav2vec2_bert_mel_domain_is_differentiable(saved, clips):
    classifier = load(str(saved("wav2vec2-bert")))
    waveform = clips.clone().requires_grad_()
    model = DomainModel(classifier, DOMAINS["mel"])
    assert not model.needs_phase and DomainModel(classifier, DOMAINS["listenable"]).needs_phase
    features = model.features(waveform)
    features.retain_grad()
    model(features).logsumexp(1).sum().backward()
    assert features.grad.abs().sum() > 0 and waveform.grad.abs().sum() > 0


def test_a_model_type_outside_the_mapping_is_refused_naming_the_supported_ones(tmp_path):
    from transformers import BertConfig

    BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(
        tmp_path / "bert")
    with pytest.raises(ValueError, match=r"a 'bert' model.*wav2vec2, .*wav2vec2-bert.*Classifier of your own"):
        load(str(tmp_path / "bert"))


def test_a_feature_extractor_that_does_not_fit_is_refused_naming_the_fix(tmp_path):
    from transformers import ASTFeatureExtractor, SeamlessM4TFeatureExtractor

    save_tiny(tmp_path / "w2v2-ast", "wav2vec2", ASTFeatureExtractor())
    with pytest.raises(ValueError, match="ASTFeatureExtractor, where the wav2vec2 model reads those of "
                                         "Wav2Vec2FeatureExtractor: save the model's own"):
        load(str(tmp_path / "w2v2-ast"))
    save_tiny(tmp_path / "bert-64", "wav2vec2-bert", SeamlessM4TFeatureExtractor(feature_size=64, num_mel_bins=64))
    with pytest.raises(ValueError, match=r"64 bands × 2 frames = 128 values where the model reads 160: save the "
                                         r"model's own SeamlessM4TFeatureExtractor"):
        load(str(tmp_path / "bert-64"))
