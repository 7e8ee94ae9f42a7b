"""Zero-shot CLAP behind the classifier contract (``classifiers.clap``), on tiny random ``ClapModel``s saved
offline with their processor: features and logits against ``ClapFeatureExtractor`` and ``ClapModel`` on real
clips, the unfolded time × frequency grids, the refusals, and one benchmark run."""
import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark.cli import main
from classifiers import load_pretrained
from classifiers.clap import DEFAULT_TEMPLATE, check_template, refold, unfold
from classifiers.huggingface import weights_key
from foundation.frontend import resample
from tests.bad_input_files import clips_per_class, esc50_tree
from tests.conftest import ESC50, ESC50_CLASSES, save_tiny_ast

SEAM = slice(499, 502)
"""The model frames at the seam of a 5 s clip's two repetitions (module docstring of ``classifiers.clap``)."""


def byte_level_vocabulary() -> dict[str, int]:
    """RoBERTa's special tokens and the 256 characters of byte-level BPE (GPT-2's byte → character map), no merges:
    a tokenizer that spells every prompt in single bytes, built offline."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    characters = [chr(b) if b in printable else chr(next(extra)) for b in range(256)]
    return {token: i for i, token in enumerate(["<s>", "<pad>", "</s>", "<unk>", *characters, "<mask>"])}


def save_tiny_clap(folder: Path, fused: bool = False) -> Path:
    """A tiny untrained ``ClapModel`` (text: 1-layer RoBERTa of width 16; audio: HTSAT with 3 stages of width
    8/16/32, 8 × 8 patches, HTSAT's 256 × 256 image of 64 mel bins) and its ``ClapProcessor`` (a
    ``ClapFeatureExtractor`` with the model's truncation, a byte-level ``RobertaTokenizer``), saved to ``folder``."""
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor, RobertaTokenizer

    tokenizer = RobertaTokenizer(vocab=byte_level_vocabulary(), merges=[])
    torch.manual_seed(0)
    audio = dict(patch_embeds_hidden_size=8, depths=[1, 1, 1], num_attention_heads=[1, 2, 2], hidden_size=32,
                 patch_size=8, patch_stride=8, mlp_ratio=2.0, enable_fusion=fused,
                 fusion_type="aff_2d" if fused else None)
    text = dict(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, max_position_embeddings=128)
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)).save_pretrained(folder)
    extractor = ClapFeatureExtractor(truncation="fusion" if fused else "rand_trunc")
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_claps(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clap")
    return {kind: save_tiny_clap(root / kind, fused=kind == "fused") for kind in ("unfused", "fused")}


def processor_inputs(folder: Path, clips: torch.Tensor, prompts: list[str] | None = None) -> dict:
    """``ClapProcessor``'s inputs of the clips resampled to 48 kHz as the classifier resamples them, with
    ``is_longer`` False: the extractor marks one random clip of an all-short batch longer (a training device of
    LAION's CLAP), which the classifier does not draw."""
    from transformers import ClapProcessor

    processor = ClapProcessor.from_pretrained(folder)
    inputs = processor(audio=[clip.numpy() for clip in resample(clips, 48000)], text=prompts, sampling_rate=48000,
                       return_tensors="pt", padding=True)
    inputs["is_longer"] = torch.zeros_like(inputs["is_longer"])
    return inputs


@pytest.mark.parametrize("kind", ["unfused", "fused"])
def test_features_are_the_extractors_frames_repeated_as_it_repeats_the_clip(tiny_claps, clips, kind):
    """Slaney mel (rand_trunc) and HTK mel in 4 channels (fusion): every model frame within 0.01 dB of the
    extractor's (measured: 3.4e-3 dB, float32 STFT noise in bins near −90 dB) but the 3 at the seam of the
    clip's two repetitions, where the extractor's windows see the clip's end before its start."""
    classifier = load_pretrained(f"hf:{tiny_claps[kind]}")
    features = classifier.features(clips)
    assert features.shape == (2, 501, 64)
    ours, longer = classifier.model_input(features)
    theirs = processor_inputs(tiny_claps[kind], clips)["input_features"]
    assert ours.shape == theirs.shape == (2, 4 if kind == "fused" else 1, 1001, 64) and not longer.any()
    difference = (ours - theirs).abs()
    assert difference[:, :, :SEAM.start].max() < 1e-2 and difference[:, :, SEAM.stop:].max() < 1e-2
    assert difference[:, :, SEAM].max() > 0.1  # the seam: reflect padding here, the clip's other end there
    classifier.use_class_names(ESC50_CLASSES[:2])
    features.requires_grad_()
    classifier(features)[:, 0].sum().backward()
    assert features.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["unfused", "fused"])
def test_logits_are_clap_models_logits_per_audio_of_the_dataset_prompts(tiny_claps, clips, kind):
    """On the extractor's own input our logits path equals ``ClapModel.logits_per_audio`` to 1e-5 (measured
    6e-7); end to end, from our features, to 0.02 (measured 3e-3 of logits of about 1: the seam frames)."""
    classifier = load_pretrained(f"hf:{tiny_claps[kind]}")
    classifier.use_class_names(ESC50_CLASSES)
    assert classifier.prompts[0] == DEFAULT_TEMPLATE.format(ESC50_CLASSES[0]) == "This is a sound of dog."
    inputs = processor_inputs(tiny_claps[kind], clips, classifier.prompts)
    with torch.no_grad():
        reference = classifier.model(**inputs).logits_per_audio
        audio = classifier.model.get_audio_features(input_features=inputs["input_features"],
                                                    is_longer=inputs["is_longer"]).pooler_output
        on_their_input = classifier.model.logit_scale_a.exp() * audio @ classifier.text_embeds.t()
        ours = classifier.forward_with_representations(classifier.features(clips))
        plain = classifier.model.get_audio_features(*classifier.model_input(classifier.features(clips)))
    assert ours.logits.shape == (2, 50)
    torch.testing.assert_close(on_their_input, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.logits, reference, atol=2e-2, rtol=0)
    # the cam grid and the unfolding change nothing: the same logits without them (the hooks rest outside a pass)
    torch.testing.assert_close(ours.logits, classifier.model.logit_scale_a.exp() * plain.pooler_output
                               @ classifier.text_embeds.t(), atol=1e-6, rtol=0)


def test_unfold_undoes_htsats_fold_of_time_into_frequency(tiny_claps):
    """A (1024 frames × 64 bins) grid numbered t·1000 + f, folded by the encoder's ``reshape_mel2img`` into its
    256 × 256 image, read as tokens (one per pixel): ``unfold`` gives the grid back, and ``refold`` the tokens."""
    classifier = load_pretrained(f"hf:{tiny_claps['unfused']}")
    grid = (torch.arange(1024)[:, None] * 1000 + torch.arange(64)).double()[None, None]
    image = classifier.model.audio_model.audio_encoder.reshape_mel2img(grid)
    assert image.shape == (1, 1, 256, 256)
    tokens = image.flatten(2).transpose(1, 2)  # (1, 256·256, 1), row-major as the patch embedding flattens
    unfolded = unfold(tokens, 256, 256, chunks=4)
    assert torch.equal(unfolded, grid)
    assert torch.equal(refold(unfolded, 256, 256), tokens)


def test_representations_are_the_clips_time_frequency_grids_deepest_first(tiny_claps, clips):
    classifier = load_pretrained(f"hf:{tiny_claps['unfused']}")
    classifier.use_class_names(ESC50_CLASSES[:3])
    # stages of 32, 16, 8 tokens square (4 time chunks × 8/4/2 bands, 32/16/8 columns): time 128/64/32 over the
    # model's 10 s, 64/32/16 over the clip, whose 2 repetitions are stacked as channels
    assert classifier.representation_shapes(80000) == [(2 * 32, 16, 2), (2 * 16, 32, 4), (2 * 8, 64, 8)]
    assert {"representations", "cam_layer"} <= classifier.capabilities()
    with torch.no_grad():
        grids = classifier.forward_with_representations(classifier.features(clips)).representations
    assert not torch.equal(grids[0][:, :32], grids[0][:, 32:])  # the two repetitions: their own activations
    levels = classifier.randomisation_levels()
    assert [name for name, _ in levels][:2] == ["audio projection", "audio projection + stage 3"] and len(levels) == 5
    twin = copy.deepcopy(classifier)  # the sanity check copies it: the hooks follow the copy
    torch.nn.init.zeros_(twin.model.audio_projection.linear1.weight)
    with torch.no_grad():
        assert not torch.equal(twin(classifier.features(clips)), classifier(classifier.features(clips)))
        assert len(twin.forward_with_representations(classifier.features(clips)).representations) == 3


def test_the_template_words_the_prompts_and_enters_the_key(tiny_claps):
    classifier = load_pretrained(f"hf:{tiny_claps['unfused']}")
    classifier.use_class_names(["dog", "rain"])
    default = (weights_key(classifier), classifier.text_embeds.clone())
    classifier.use_class_names(["dog", "chirping_birds"], "a recording of {}")
    assert classifier.prompts == ["a recording of dog", "a recording of chirping birds"]  # underscores read as spaces
    assert weights_key(classifier) != default[0] and not torch.equal(classifier.text_embeds, default[1])
    for bad in ("no braces", "{} and {}", "{name}", "{0}"):
        with pytest.raises(ValueError, match="--prompt-template .*one {} where the class name goes"):
            check_template(bad)
    with pytest.raises(ValueError, match="--prompt-template .*--classifier cnn14 has its own classes"):
        check_template("a {}", "cnn14")


def test_a_clap_folder_without_its_text_side_is_refused(tiny_claps, tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers import ClapFeatureExtractor, ClapModel

    no_tokenizer = tmp_path / "no-tokenizer"
    ClapModel.from_pretrained(tiny_claps["unfused"]).save_pretrained(no_tokenizer)
    ClapFeatureExtractor(truncation="rand_trunc").save_pretrained(no_tokenizer)
    with pytest.raises(ValueError, match=r"^--classifier hf:.*without its tokenizer.*ClapProcessor[^\n]*$"):
        load_pretrained(f"hf:{no_tokenizer}")
    no_text = tmp_path / "no-text"
    save_tiny_clap(no_text)
    weights = load_file(no_text / "model.safetensors")
    save_file({k: v for k, v in weights.items() if not k.startswith("text_model.")}, no_text / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"^--classifier hf:.*without its text tower's weights[^\n]*$"):
        load_pretrained(f"hf:{no_text}")


def test_prompt_template_is_refused_without_braces_or_for_a_model_that_is_not_clap(tmp_path, capsys):
    ast = save_tiny_ast(tmp_path / "ast", ESC50_CLASSES)
    common = ["--data-root", str(ESC50), "--profile", "tiny", "--limit", "1", "--out", str(tmp_path / "out"),
              "--cache-dir", str(tmp_path / "cache"), "--methods", "saliency"]
    for classifier, template, said in (("hf:x", "no braces", "one {} where"), ("cnn14", "a {}", "own classes"),
                                       (f"hf:{ast}", "a {}", "is not a zero-shot CLAP model")):
        assert main(["--classifier", classifier, "--prompt-template", template, *common]) == 2
        error = capsys.readouterr().err.strip()
        assert "--prompt-template" in error and said in error and "Traceback" not in error


def test_clap_runs_the_benchmark_as_a_zero_shot_classifier_of_the_datasets_classes(tiny_claps, tmp_path):
    """A small ESC-50 copy (8 clips of each of 3 classes: the full shared copy trains L-MAC on 257 clips, minutes
    on two cores), both domains, a saliency, a CAM and a decoder method."""
    data = esc50_tree(tmp_path / "esc50", clips_per_class(8))
    out = tmp_path / "out"
    assert main(["--classifier", f"hf:{tiny_claps['unfused']}", "--data-root", str(data), "--methods",
                 "saliency,gradcam,lmac", "--domains", "listenable,mel", "--profile", "tiny", "--limit", "1",
                 "--prompt-template", "the sound of {}", "--out", str(out), "--cache-dir",
                 str(tmp_path / "cache")]) == 0
    rows = pd.read_csv(out / "per_sample.csv")
    assert {(d, m) for d, m in zip(rows["domain"], rows["method"]) if m in ("saliency", "gradcam", "lmac")} == {
        (d, m) for d in ("listenable", "mel") for m in ("saliency", "gradcam", "lmac")}
    assert np.isfinite(rows[["AI", "FF"]].to_numpy()).all()
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["prompt_template"] == "the sound of {}"
    assert record["classifier"]["prompt_template"] == "the sound of {}" and record["classifier"]["classes"] == 3
