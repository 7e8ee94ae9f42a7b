"""Whisper behind the classifier contract, on real clips and offline: its features equal
``WhisperFeatureExtractor``'s, its grids, its refusals of extractors that do not fit, and a tiny saved
``WhisperForAudioClassification`` through the command line in both domains."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from classifiers.huggingface import load
from tests.conftest import ESC50, ESC50_CLASSES

TOLERANCE = 1e-5
"""Largest absolute difference allowed from the extractor's ``input_features`` (measured: 1.2e-7 against its
torch path, 2.5e-6 against its NumPy path, on the two clips)."""


def save_tiny_whisper(folder: Path, extractor: dict | None = None, **config) -> Path:
    """A tiny untrained ``WhisperForAudioClassification`` of the ESC-50 classes (d_model 16, 2 encoder layers,
    80 mel bands, 30 s chunks unless ``config`` says otherwise) and its ``WhisperFeatureExtractor``
    (``extractor``'s settings) written with ``save_pretrained`` to ``folder``."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForAudioClassification

    torch.manual_seed(0)
    sizes = dict(d_model=16, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=32, decoder_layers=1,
                 decoder_attention_heads=2, decoder_ffn_dim=32, classifier_proj_size=16, num_mel_bins=80,
                 max_source_positions=1500)
    WhisperForAudioClassification(WhisperConfig(
        **{**sizes, **config}, num_labels=len(ESC50_CLASSES), id2label=dict(enumerate(ESC50_CLASSES)),
        label2id={n: i for i, n in enumerate(ESC50_CLASSES)})).save_pretrained(folder)
    WhisperFeatureExtractor(**{"feature_size": 80, **(extractor or {})}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory) -> Path:
    return save_tiny_whisper(tmp_path_factory.mktemp("hf") / "tiny-whisper")


@pytest.mark.parametrize("path", ["torch", "numpy"])
@pytest.mark.parametrize("samples", [80000, 80159])
def test_whisper_features_equal_the_feature_extractors_on_real_clips(tiny_whisper, clips, path, samples, monkeypatch):
    """The clip's frames and the padded input against ``WhisperFeatureExtractor``, with its torch path and its
    own NumPy implementation; 80,159 samples need a 503rd frame (its window reaches the last sample)."""
    from transformers import WhisperFeatureExtractor
    from transformers.models.whisper import feature_extraction_whisper

    if path == "numpy":
        monkeypatch.setattr(feature_extraction_whisper, "is_torch_available", lambda: False)
    waveform = torch.cat([clips, clips], 1)[:, :samples]
    theirs = WhisperFeatureExtractor(feature_size=80)([x.numpy() for x in waveform], sampling_rate=16000,
                                                      return_tensors="pt")["input_features"]
    classifier = load(str(tiny_whisper))
    features = classifier.features(waveform)
    frames = {80000: 502, 80159: 503}[samples]
    assert features.shape == (2, frames, 80)
    assert (features - theirs.transpose(1, 2)[:, :frames]).abs().max().item() < TOLERANCE
    ours = classifier.model_input(features)
    assert ours.shape == theirs.shape == (2, 80, 3000)
    assert (ours - theirs).abs().max().item() < TOLERANCE


def test_whisper_grids_logits_gradients_and_levels(tiny_whisper, clips):
    classifier = load(str(tiny_whisper))
    assert classifier.feature_domain == "mel"
    assert classifier.representation_shapes(80000) == [(16, 251, 1)] * 2  # 20 ms positions of the clip
    assert {"representations", "cam_layer"} <= classifier.capabilities()
    features = classifier.features(clips)
    with torch.no_grad():
        plain = classifier.model(input_features=classifier.model_input(features)).logits
        ours = classifier.forward_with_representations(features)
    torch.testing.assert_close(ours.logits, plain, rtol=0, atol=1e-6)  # the hooks change nothing
    seen = []
    handle = classifier.cam_layer().register_forward_hook(lambda module, args, output: seen.append(output))
    features.requires_grad_()
    classifier(features)[:, 0].sum().backward()
    handle.remove()
    assert seen[0].shape == (2, 16, 251, 1) and seen[0].requires_grad
    assert features.grad.abs().sum() > 0 and torch.isfinite(features.grad).all()
    assert [name for name, _ in classifier.randomisation_levels()] == [
        "head", "head + layer 2", "head + layers 2–1", "head + all layers + convolutions"]
    described = classifier.describe()
    assert (described["model_type"], described["d_model"], described["layers"], described["n_mels"],
            described["frame_ms"]) == ("whisper", 16, 2, 80, 10.0)


@pytest.mark.parametrize(("extractor", "config", "message"), [
    ({"feature_size": 128}, {}, r"gives 128 mel bands where the model reads 80: save the model's own"),
    ({"chunk_length": 15}, {}, r"gives 1500 frames \(15 s chunks\) where the encoder takes exactly 3000"),
    ({"chunk_length": 4}, {"max_source_positions": 200}, r"chunk of 64000 samples \(4 s\) is shorter than a 5 s"),
])
def test_whisper_refuses_an_extractor_that_does_not_fit(tmp_path, extractor, config, message):
    folder = save_tiny_whisper(tmp_path / "whisper", extractor, **config)
    with pytest.raises(ValueError, match=message) as refusal:
        load(str(folder))
    assert "\n" not in str(refusal.value) and str(refusal.value).startswith(f"--classifier hf:{folder}: ")


def test_a_tiny_whisper_model_runs_through_the_command_line_in_both_domains(tmp_path):
    """Its encoder takes 6 s chunks (300 positions), a fifth of the 30 s model's time: the same code, the clip's
    502 frames padded to 600."""
    folder = save_tiny_whisper(tmp_path / "whisper", {"chunk_length": 6}, max_source_positions=300)
    out = tmp_path / "out"
    assert main(["--classifier", f"hf:{folder}", "--data-root", str(ESC50), "--methods", "saliency,gradcam,lmac",
                 "--domains", "listenable,mel", "--profile", "tiny", "--limit", "1", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    for domain in ("listenable", "mel"):
        for method in ("saliency", "gradcam", "lmac"):
            ran = rows[(rows["domain"] == domain) & (rows["method"] == method)]
            assert len(ran) and np.isfinite(ran[["AI", "FF"]].to_numpy(float)).all(), (domain, method)
