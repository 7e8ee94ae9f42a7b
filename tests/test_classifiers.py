"""The classifier contract on real clips: CNN14 unchanged, the AST's features equal Hugging Face's, a
tiny saved ``hf:`` model through every explainer in both domains, the docs' own-module example,
and the import direction of the packages."""
import ast as python_ast
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from classifiers import DomainModel, classifier_class, load_pretrained
from classifiers.ast import CLIP_FRAMES, kaldi_fbank
from foundation.frontend import DOMAINS, apply_mask, listenable_waveform, stft
from methods import available_methods
from tests.conftest import ESC50, ESC50_CLASSES, ROOT, save_tiny_ast

OWN_CLASSIFIER_EXAMPLE = re.search(r"## Your own classifier.*?```python\n(.*?)```",
                                   (ROOT / "docs" / "extending.md").read_text(), re.S).group(1)


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    return save_tiny_ast(tmp_path_factory.mktemp("hf") / "tiny-ast", ESC50_CLASSES)


@pytest.mark.parametrize("path", ["numpy", "torchaudio"])
def test_ast_features_equal_the_feature_extractors_on_real_clips(clips, path, monkeypatch):
    """``kaldi_fbank`` + padding + normalisation, in torch, against ``ASTFeatureExtractor``: with its
    torchaudio path and with its own NumPy implementation (an independent computation)."""
    from transformers import ASTFeatureExtractor
    from transformers.models.audio_spectrogram_transformer import feature_extraction_audio_spectrogram_transformer

    if path == "numpy":
        monkeypatch.setattr(feature_extraction_audio_spectrogram_transformer, "is_speech_available", lambda: False)
    extractor = ASTFeatureExtractor(max_length=1024)
    theirs = extractor([clip.numpy() for clip in clips], sampling_rate=16000, return_tensors="pt")["input_values"]
    classifier = classifier_class("ast").build(ESC50_CLASSES, "tiny")
    classifier.extractor_settings["max_length"] = 1024  # the extractor's default, padded as it pads
    features = classifier.features(clips)
    assert features.shape == (2, CLIP_FRAMES, 128)
    ours = classifier.model_input(features)
    assert ours.shape == theirs.shape == (2, 1024, 128)
    assert (ours - theirs).abs().max().item() < 1e-4


def test_ast_features_are_differentiable_and_its_listenable_input_is_what_a_listener_hears(clips):
    classifier = classifier_class("ast").build(ESC50_CLASSES, "tiny").eval()
    spec = stft(clips)
    model = DomainModel(classifier, DOMAINS["listenable"]).hearing(spec, clips.shape[1])
    assert model.needs_phase and not DomainModel(classifier, DOMAINS["mel"]).needs_phase
    features = model.features(clips, spec).requires_grad_()
    mask = torch.rand(2, 425, 513, generator=torch.Generator().manual_seed(0))
    heard = model.model_input(apply_mask(features, mask)[0], model.phase)
    listener = kaldi_fbank(listenable_waveform(mask, spec, clips.shape[1]))
    assert (heard - listener).abs().max().item() < 1e-3
    model(features).sum().backward()
    assert features.grad.abs().sum() > 0
    # the unmasked input comes back: the inverse STFT of X with its own phase is the clip
    whole = model.model_input(features.detach(), model.phase)
    assert (whole - classifier.features(clips)).abs().max().item() < 1e-2


def test_ast_representations_and_cam_layer_are_grids(clips):
    classifier = classifier_class("ast").build(ESC50_CLASSES, "tiny").eval()
    frames, bands = classifier.grid
    assert classifier.representation_shapes(80000) == [(16, frames, bands)] * 2
    assert {"representations", "cam_layer"} <= classifier.capabilities()
    assert "relu_modules" not in classifier.capabilities()  # GELU: Guided Backprop would be the plain gradient
    features = classifier.features(clips)
    with torch.no_grad():
        plain = classifier.model(input_values=classifier.model_input(features)).logits
        ours = classifier.forward_with_representations(features)
    torch.testing.assert_close(ours.logits, plain)  # the grid module changes nothing
    levels = classifier.randomisation_levels()
    assert levels[0][0] == "head" and len(levels) == 4


def test_a_tiny_hf_model_saved_offline_runs_every_explainer_in_both_domains(tiny_hf, tmp_path):
    out = tmp_path / "out"
    assert main(["--classifier", f"hf:{tiny_hf}", "--data-root", str(ESC50), "--methods", "all",
                 "--domains", "listenable,mel", "--profile", "tiny", "--limit", "1", "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    ran = {(domain, method.split()[0]) for domain, method in zip(rows["domain"], rows["method"])}  # "l2i rth=0.2"
    without_relu = {"guided-backprop", "guided-gradcam"}  # left out: the AST has no nn.ReLU
    for method in set(available_methods()) - without_relu:
        assert ("listenable", method) in ran
        assert ("mel", method) in ran or method == "l2i"  # L2I explains the STFT grid only
    assert not any(m in without_relu for _, m in ran)
    assert rows[["AI", "FF", "SPS"]].notna().all().all()
    classifier = load_pretrained(f"hf:{tiny_hf}")
    assert classifier.class_names == ESC50_CLASSES and classifier.grid == (50, 12)


def test_an_hf_model_explains_unlabelled_recordings(tiny_hf, tmp_path):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("4-102844-A-49.wav", "4-102871-A-42.wav"):
        (folder / name).symlink_to(ESC50 / "audio" / name)
    out = tmp_path / "out"
    assert main(["--classifier", f"hf:{tiny_hf}", "--dataset", "folder", "--data-root", str(folder), "--setting",
                 "clean", "--methods", "saliency,gradcam", "--controls", "none", "--profile", "tiny", "--out",
                 str(out), "--cache-dir", str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    assert len(rows) == 4 and (rows["label"] == -1).all()
    assert "classifier accuracy n/a (unlabelled)" in (out / "table.md").read_text().splitlines()[0]


def test_the_docs_own_classifier_example_runs_the_benchmark(tmp_path, monkeypatch):
    (tmp_path / "my_classifier.py").write_text(OWN_CLASSIFIER_EXAMPLE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    assert main(["--import", "my_classifier", "--classifier", "my-cnn", "--data-root", str(ESC50), "--methods",
                 "saliency,gradcam,lmac", "--profile", "tiny", "--limit", "2", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    assert set(rows["method"]) == {"saliency", "gradcam", "lmac", "all-ones", "random", "energy"}
    assert list((tmp_path / "cache").glob("classifier-*.pt")) and list((tmp_path / "cache").glob("lmac-*.pt"))
    assert main(["sanity", "--import", "my_classifier", "--classifier", "my-cnn", "--data-root", str(ESC50),
                 "--methods", "saliency,gradcam", "--profile", "tiny", "--limit", "1", "--out",
                 str(tmp_path / "sanity"), "--cache-dir", str(tmp_path / "cache")]) == 0
    assert set(pd.read_csv(tmp_path / "sanity" / "sanity.csv")["level"]) == {0, 1, 2, 3}


def test_cnn14_reads_the_stft_and_keeps_speechbrains_decoder_layout(small_classifier, clips):
    spec = stft(clips)
    model = DomainModel(small_classifier, DOMAINS["listenable"])
    assert model.hearing(spec, clips.shape[1]) is model  # no phase: the STFT→Mel wrapper
    assert small_classifier.decoder_layout == "speechbrain-cnn14"
    assert small_classifier.representation_shapes(80000) == [(128, 13, 2), (64, 13, 2), (32, 26, 5), (16, 53, 10)]
    assert small_classifier.capabilities() == {"representations", "cam_layer", "relu_modules"}


PACKAGES = ("benchmark", "classifiers", "datasets", "foundation", "methods", "metrics")


def imports_of(module: str) -> set[str]:
    """The project modules that ``module`` imports (its own file's import statements)."""
    path = ROOT / Path(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    found = set()
    for node in python_ast.walk(python_ast.parse(path.read_text())):
        names = [a.name for a in node.names] if isinstance(node, python_ast.Import) else \
            [node.module] if isinstance(node, python_ast.ImportFrom) and node.module else []
        if isinstance(node, python_ast.ImportFrom) and node.module in PACKAGES:  # from foundation import distributed
            names += [f"{node.module}.{a.name}" for a in node.names
                      if (ROOT / node.module / f"{a.name}.py").exists()]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                found.add(name if (ROOT / Path(*name.split("."))).with_suffix(".py").exists()
                          or (ROOT / Path(*name.split("."))).is_dir() else name.rsplit(".", 1)[0])
    return found


def reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for found in imports_of(todo.pop()) - seen:
            seen.add(found)
            todo.append(found)
    return seen


def test_nothing_that_methods_metrics_or_classifiers_import_imports_them_back():
    for package in ("methods", "metrics", "classifiers"):
        modules = [f"{package}.{p.stem}" for p in (ROOT / package).glob("*.py") if p.stem != "__init__"]
        for module in modules:
            back = {m for m in reachable(module) if m.split(".")[0] == package and m != package}
            outside = reachable(module) - {m for m in reachable(module) if m.split(".")[0] == package}
            for other in outside:
                assert not any(m.split(".")[0] == package for m in reachable(other)), (module, other)
            assert back <= {f"{package}.{p.stem}" for p in (ROOT / package).glob("*.py")}
    for module in reachable("classifiers"):
        assert module.split(".")[0] not in ("methods", "metrics") and module != "benchmark.harness", module


LAYERS = {"foundation": 0, "datasets": 0, "classifiers": 1, "methods": 1, "metrics": 1, "benchmark": 2}
"""foundation ← classifiers, methods, metrics ← harness (benchmark/) ← commands (benchmark/commands/)."""


def test_imports_run_one_way_from_the_commands_down_to_the_foundation():
    for package, layer in LAYERS.items():
        for path in (ROOT / package).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for imported in imports_of(module):
                assert LAYERS[imported.split(".")[0]] <= layer, f"{module} imports {imported}, a layer above it"
                if not module.startswith(("benchmark.commands", "benchmark.cli")):  # the command line dispatches
                    assert not imported.startswith("benchmark.commands"), f"{module} imports the command {imported}"


def test_the_waveform_domain_is_the_samples_in_20_ms_frames_and_its_truth_is_by_frame(clips):
    from classifiers.wav2vec2 import normalise
    from metrics.localisation import ideal_binary_mask

    classifier = classifier_class("wav2vec2").build(ESC50_CLASSES, "tiny").eval()
    assert classifier.feature_domain == "waveform"
    model = DomainModel(classifier, DOMAINS["waveform"])
    features = model.features(clips)
    assert features.shape == (2, 250, 320) and torch.equal(features.reshape(2, -1), clips)
    assert torch.equal(classifier.model_input(features), normalise(clips))  # as Wav2Vec2FeatureExtractor
    assert model.grid(80000) == (250, 320) and classifier.representation_shapes(80000) == [(16, 249, 1)] * 2
    quiet = features * torch.linspace(0, 2, 250).view(1, -1, 1)  # louder than the clip after frame 125
    truth = ideal_binary_mask(quiet, features, by_frame=True)
    assert truth.shape == features.shape and (truth == truth[:, :, :1]).all()  # one decision per 20 ms frame
    assert not truth[:, :100].any() and truth[:, 150:].all()


def test_a_waveform_model_has_no_mel_domain(tmp_path, capsys):
    assert main(["--classifier", "wav2vec2", "--data-root", str(ESC50), "--domains", "listenable,mel", "--profile",
                 "tiny", "--limit", "1", "--methods", "saliency", "--out", str(tmp_path / "out"), "--cache-dir",
                 str(tmp_path / "cache")]) == 2
    assert "has no mel domain; its own features are the waveform domain" in capsys.readouterr().err
    assert not list((tmp_path / "cache").glob("*.pt"))  # refused before any training


def test_a_model_of_another_rate_hears_the_clip_resampled(tmp_path, clips):
    """A 22,050 Hz AST: the benchmark's 16 kHz clip is resampled (sinc interpolation), then the extractor's
    features at the model's rate."""
    from transformers import ASTFeatureExtractor

    from foundation.frontend import resample

    folder = save_tiny_ast(tmp_path / "ast-22k", ESC50_CLASSES, sampling_rate=22050)
    classifier = load_pretrained(f"hf:{folder}")
    resampled = resample(clips, 22050)
    assert resampled.shape == (2, 110250)
    theirs = ASTFeatureExtractor.from_pretrained(folder)([clip.numpy() for clip in resampled], sampling_rate=22050,
                                                         return_tensors="pt")["input_values"]
    ours = classifier.model_input(classifier.features(clips))
    assert ours.shape == theirs.shape == (2, 512, 128) and (ours - theirs).abs().max().item() < 1e-4
