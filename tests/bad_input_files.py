"""Bad inputs made on disk for ``test_bad_inputs.py``: checkpoints, data trees, saved models and
modules, each named as the ``{name}`` of its cases."""
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import torch

from tests.conftest import ESC50, ESC50_CLASSES, save_tiny_ast

ROOT = Path(__file__).resolve().parents[1]
META = pd.read_csv(ESC50 / "meta" / "esc50.csv")


def esc50_tree(folder: Path, rows: pd.DataFrame) -> Path:
    """An ESC-50 tree in the official layout holding ``rows`` of the shared fold-4 copy (audio linked)."""
    (folder / "meta").mkdir(parents=True)
    (folder / "audio").mkdir()
    rows.to_csv(folder / "meta" / "esc50.csv", index=False)
    for name in rows["filename"]:
        (folder / "audio" / name).symlink_to(ESC50 / "audio" / name)
    return folder


def clips_per_class(count: int, targets=(0, 1, 10)) -> pd.DataFrame:
    return pd.concat([META[META["target"] == t].sort_values("filename").head(count) for t in targets])


class Evil:
    """Unpickling this runs a shell command: a hostile checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


BARE_CLASSIFIER = '''
import torch
from torch import nn

from classifiers import Classifier, ClassifierPass, register_classifier


@register_classifier("bare")
class Bare(Classifier):
    """Logits only: no representations, no CAM layer, no nn.ReLU."""

    def __init__(self, class_names):
        super().__init__(class_names)
        self.head = nn.Linear(80, len(class_names))

    @classmethod
    def build(cls, class_names, profile):
        return cls(class_names)

    @classmethod
    def training_config(cls, profile):
        return {"epochs": 1, "lr": 1e-3}

    def features(self, waveform):
        spectrum = torch.stft(waveform, 158, window=torch.hann_window(158), return_complex=True)
        return spectrum.abs().transpose(1, 2)[..., :80]

    def forward_with_representations(self, features):
        return ClassifierPass(self.head(features.mean(1)), ())
'''


def model_folders(folder: Path) -> dict[str, Path]:
    """Saved transformers models that ``--classifier hf:`` must refuse, by name."""
    from transformers import BertConfig, BertModel, Wav2Vec2FeatureExtractor

    BertModel(BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8,
                         vocab_size=10)).save_pretrained(folder / "bert")
    made = {"bert": folder / "bert",
            "ast_three_classes": save_tiny_ast(folder / "ast-three", ["a", "b", "c"]),
            "ast_four_seconds": save_tiny_ast(folder / "ast-4s", ESC50_CLASSES, max_length=400),
            "ast_wav2vec2_extractor": save_tiny_ast(folder / "ast-w2v", ESC50_CLASSES)}
    Wav2Vec2FeatureExtractor().save_pretrained(folder / "ast-w2v")  # replaces the AST's own extractor
    return made


def bad_files(tmp_path: Path) -> dict[str, Path]:
    """Bad checkpoint files and data trees in ``tmp_path``, by name (the ``{name}`` of CASES)."""
    made = {"missing": tmp_path / "missing.pt", "random": tmp_path / "random.pt",
            "described_random": tmp_path / "described" / "classifier-x.pt",
            "evil": tmp_path / "evil" / "classifier-x.pt", "marker": tmp_path / "code-ran",
            "not_a_decoder": tmp_path / "decoder.pt"}
    made["random"].write_bytes(os.urandom(4096))
    for name in ("described_random", "evil"):
        made[name].parent.mkdir()
        made[name].with_suffix(".json").write_text(json.dumps({"config": {"class_names": list(
            META.sort_values("target")["category"].unique()), "width": 2}}))
    made["described_random"].write_bytes(os.urandom(4096))
    torch.save({"weight": Evil(made["marker"])}, made["evil"])
    torch.save({"weight": torch.zeros(3)}, made["not_a_decoder"])
    made["header_only"] = esc50_tree(tmp_path / "header-only", META.iloc[:0])
    made["one_per_class"] = esc50_tree(tmp_path / "one-per-class", clips_per_class(1))
    made["two_per_class"] = esc50_tree(tmp_path / "two-per-class", clips_per_class(2))
    made["us8k"] = tmp_path / "UrbanSound8K"
    rows = []
    for i, row in enumerate(clips_per_class(2).itertuples()):
        fold = 1 + i % 3
        (made["us8k"] / "audio" / f"fold{fold}").mkdir(parents=True, exist_ok=True)
        (made["us8k"] / "audio" / f"fold{fold}" / row.filename).symlink_to(ESC50 / "audio" / row.filename)
        rows.append({"slice_file_name": row.filename, "fsID": i, "start": 0.0, "end": 4.0, "salience": 1,
                     "fold": fold, "classID": (0, 1, 10).index(row.target), "class": row.category})
    (made["us8k"] / "metadata").mkdir()
    pd.DataFrame(rows).to_csv(made["us8k"] / "metadata" / "UrbanSound8K.csv", index=False)
    made["a_file"] = tmp_path / "a-file"
    made["a_file"].write_text("not a folder")
    (tmp_path / "lmac_test_raising_module.py").write_text("import os\n\nraise RuntimeError('broken on purpose')\n")
    (tmp_path / "lmac_test_bare_classifier.py").write_text(BARE_CLASSIFIER)
    made["empty_folder"] = tmp_path / "empty-folder"
    made["empty_folder"].mkdir()
    eight = clips_per_class(8)
    made["repeated_row"] = esc50_tree(tmp_path / "repeated-row", eight)
    pd.concat([eight, eight.head(1)]).to_csv(made["repeated_row"] / "meta" / "esc50.csv", index=False)
    made["bad_fold"] = esc50_tree(tmp_path / "bad-fold", eight)
    bad = eight.astype({"fold": object})
    bad.iloc[3, bad.columns.get_loc("fold")] = "x"
    bad.to_csv(made["bad_fold"] / "meta" / "esc50.csv", index=False)
    made["truncated"] = esc50_tree(tmp_path / "truncated", eight)
    cut = made["truncated"] / "audio" / eight["filename"].iloc[0]
    data = cut.read_bytes()
    cut.unlink()
    cut.write_bytes(data[: len(data) // 3])  # header unchanged: 5 s declared, 1.67 s present
    made["truncated_clip"] = cut
    made["run_without_column"] = tmp_path / "run-without-column"
    made["run_without_column"].mkdir()
    for name in ("table.csv", "table.md", "run.json"):
        shutil.copyfile(ROOT / "results" / "esc50-ood-mixtures-cpu" / name, made["run_without_column"] / name)
    pd.read_csv(ROOT / "results" / "esc50-ood-mixtures-cpu" / "per_sample.csv").drop(columns="AI").to_csv(
        made["run_without_column"] / "per_sample.csv", index=False)
    made["download_root"] = tmp_path / "download" / "esc50"
    made["download_missing"] = tmp_path / "download-missing.zip"
    made["download_bare"] = tmp_path / "download-bare.zip"  # ESC-50-master/ without meta/ and audio/
    with zipfile.ZipFile(made["download_bare"], "w") as bundle:
        bundle.writestr("ESC-50-master/README.md", "not the dataset")
    made["download_gap"] = tmp_path / "download-gap.zip"  # its CSV lists two real clips, it holds the first
    with zipfile.ZipFile(made["download_gap"], "w") as bundle:
        bundle.writestr("ESC-50-master/meta/esc50.csv", META.head(2).to_csv(index=False))
        bundle.write(ESC50 / "audio" / META["filename"].iloc[0], f"ESC-50-master/audio/{META['filename'].iloc[0]}")
    for name in ("download_bare", "download_gap"):  # their --checksum values, "sha256:HEX", not paths
        made[f"{name}_sum"] = "sha256:" + hashlib.sha256(made[name].read_bytes()).hexdigest()
    made["esc50_root"] = ESC50  # the shared data: --out there is refused before anything is written
    made["cache_inside"] = tmp_path / "cache" / "run"  # inside the --cache-dir the suite passes
    made["committed"] = ROOT / "results" / "esc50-ood-mixtures-cpu"
    made["user_audio"] = tmp_path / "interviews"  # a user's folder: audio/interview.wav
    (made["user_audio"] / "audio").mkdir(parents=True)
    (made["user_audio"] / "audio" / "interview.wav").write_bytes(b"RIFF")
    made["user_unfinished"] = tmp_path / "thesis-folder"  # a user's unfinished/thesis/chapter1.txt
    (made["user_unfinished"] / "unfinished" / "thesis").mkdir(parents=True)
    (made["user_unfinished"] / "unfinished" / "thesis" / "chapter1.txt").write_text("chapter 1")
    (tmp_path / "lmac_test_three_outputs.py").write_text(BARE_CLASSIFIER.replace('"bare"', '"three-outputs"').replace(
        "nn.Linear(80, len(class_names))", "nn.Linear(80, 3)"))
    (tmp_path / "lmac_test_flat_cam.py").write_text(BARE_CLASSIFIER.replace('"bare"', '"flat-cam"').replace(
        "self.head = nn.Linear(80, len(class_names))", "self.head = nn.Linear(80, len(class_names))\n"
        "        self.cam = nn.Identity()\n\n    def cam_layer(self):\n        return self.cam").replace(
        "self.head(features.mean(1))", "self.head(self.cam(features.transpose(1, 2)).mean(2))"))  # (B, C, T)
    (tmp_path / "lmac_test_detached.py").write_text(BARE_CLASSIFIER.replace('"bare"', '"detached"').replace(
        "self.head(features.mean(1))", "self.head(features.detach().mean(1))"))
    (tmp_path / "lmac_test_nan_classifier.py").write_text(BARE_CLASSIFIER.replace('"bare"', '"nan"').replace(
        "self.head(features.mean(1))", "self.head(features.mean(1)) * float('nan')"))
    made["unclear_missing_module_file"] = tmp_path / "nowhere" / "my_explainer.py"  # --import of a path
    made["unclear_raising_file"] = tmp_path / "plugins" / "lmac_test_unclear_raising.py"
    made["unclear_raising_file"].parent.mkdir()
    made["unclear_raising_file"].write_text("raise RuntimeError('loaded from its path')\n")
    (tmp_path / "lmac_test_unclear_hf_user.py").write_text("from datasets import load_dataset\n")  # Hugging Face's
    made["unclear_hf_attribute_user"] = tmp_path / "plugins" / "lmac_test_unclear_hf_attribute.py"
    made["unclear_hf_attribute_user"].write_text("import datasets\nclips = datasets.load_dataset('ashraq/esc50')\n")
    made["unclear_recordings"] = tmp_path / "recordings"  # a folder of recordings: dog/*.wav
    (made["unclear_recordings"] / "dog").mkdir(parents=True)
    for name in clips_per_class(2, targets=(0,))["filename"]:
        (made["unclear_recordings"] / "dog" / name).symlink_to(ESC50 / "audio" / name)
    for key, target in (("unclear_target_minus_one", -1), ("unclear_target_50", 50), ("unclear_target_text", "dog")):
        rows = clips_per_class(2).astype({"target": object})
        rows.iloc[2, rows.columns.get_loc("target")] = target  # CSV line 4
        made[key] = esc50_tree(tmp_path / key, rows)
    made["unclear_us8k_class_id"] = tmp_path / "us8k-class-id"  # UrbanSound8K's classIDs are 0 … 9
    (made["unclear_us8k_class_id"] / "metadata").mkdir(parents=True)
    (made["unclear_us8k_class_id"] / "audio").symlink_to(made["us8k"] / "audio")
    slices = pd.read_csv(made["us8k"] / "metadata" / "UrbanSound8K.csv")
    slices["classID"] = slices["class"].map({"dog": 0, "rooster": 1, "rain": 2})
    slices.loc[3, "classID"] = 10  # CSV line 5
    slices.to_csv(made["unclear_us8k_class_id"] / "metadata" / "UrbanSound8K.csv", index=False)
    return made
