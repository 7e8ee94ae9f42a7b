"""Inputs whose message used to leave the user guessing (a path given to --import, Hugging Face ``datasets``
inside the benchmark, default LABEL_k class names, a relative hf: folder that is not there) now say what
is wrong and the way out: exit code 2, one ``error:`` line, before anything trains. The table-driven cases
are in ``test_bad_inputs.py``."""
import sys
from pathlib import Path

import huggingface_hub.constants
import pytest

import benchmark.preparation
import methods.registry
from benchmark.arguments import UsageError, config_from_args, import_user_module
from benchmark.cli import main
from benchmark.options import build_parser
from classifiers.huggingface import check_class_names
from datasets.sources import open_dataset, shadowed_hugging_face
from tests.conftest import ESC50, ESC50_CLASSES, ROOT, save_tiny_ast

EXPLAINER = '''
import torch

from methods.base import Explainer
from methods.registry import register


@register("unclear-ones")
class Ones(Explainer):
    returns_mask = True

    def __init__(self, scale: float = 1.0):
        super().__init__(scale=scale)

    def attribute(self, model, features, target):
        return torch.ones_like(features)
'''


@pytest.fixture
def own_registry(monkeypatch):
    """Methods and modules that a test registers or imports are gone after it."""
    monkeypatch.setattr(methods.registry, "_REGISTRY", dict(methods.registry._REGISTRY))
    for name in ("lmac_unclear_explainer", "lmac_unclear_nested"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def run(tmp_path, *arguments: str) -> int:
    """``main`` with a tiny profile and the test's own folders; training a model fails the test."""
    def training_started(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(benchmark.preparation, "train_classifier", training_started)
        return main(["--profile", "tiny", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out"),
                     "--data-root", str(ESC50), *arguments])


def test_import_takes_a_relative_path_of_a_py_file(tmp_path, monkeypatch, capsys, own_registry):
    (tmp_path / "lmac_unclear_explainer.py").write_text(EXPLAINER)
    monkeypatch.chdir(tmp_path)
    assert run(tmp_path, "--import", "./lmac_unclear_explainer.py", "--methods", "unclear-ones",
               "--set", "unclear-ones.nosuch=1") == 2
    error = capsys.readouterr().err
    assert "unclear-ones has no hyperparameter 'nosuch'; its hyperparameters: scale" in error  # it was imported
    assert "Traceback" not in error


def test_a_path_is_recorded_resolved_and_imported_once(tmp_path, monkeypatch, own_registry):
    module = tmp_path / "some" / "dir" / "lmac_unclear_nested.py"
    module.parent.mkdir(parents=True)
    module.write_text(EXPLAINER)
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["--import", "some/dir/lmac_unclear_nested.py", "--methods", "unclear-ones",
                                      "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
                                      "--data-root", str(ESC50)])
    config = config_from_args(args)
    assert config.imports == [str(module.resolve())]  # ``report`` imports the same file from anywhere
    monkeypatch.chdir(ROOT)
    assert import_user_module(config.imports[0]) is sys.modules["lmac_unclear_nested"]  # not run twice


def test_a_py_file_named_like_an_imported_module_is_refused(tmp_path):
    (tmp_path / "datasets.py").write_text("from datasets import load_dataset\n")
    with pytest.raises(UsageError, match=r"the module name datasets is taken .*; rename datasets.py"):
        import_user_module(str(tmp_path / "datasets.py"))


def shadowing_error() -> ImportError:
    with pytest.raises(ImportError) as caught:
        exec("from datasets import load_dataset", {})
    return caught.value


def test_hugging_face_datasets_is_explained_whether_installed_or_not(tmp_path, monkeypatch):
    installed = [p for p in sys.path if Path(p or ".").resolve() != ROOT and (Path(p) / "datasets").is_dir()]
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in installed])
    message = shadowed_hugging_face(shadowing_error())
    assert "so Hugging Face datasets cannot be imported there (nor is it installed in this environment" in message
    assert message.endswith("run with --dataset folder --data-root DIR")
    site = tmp_path / "site-packages"  # Hugging Face's package, installed behind this repository's
    (site / "datasets").mkdir(parents=True)
    (site / "datasets" / "__init__.py").write_text("def load_dataset(name): ...\n")
    monkeypatch.setattr(sys, "path", [*sys.path, str(site)])
    assert f"(installed in {site / 'datasets'}, it is shadowed)" in shadowed_hugging_face(shadowing_error())
    with pytest.raises(AttributeError) as caught:
        exec("import datasets\ndatasets.load_dataset('x')", {})
    assert "cannot be imported there" in shadowed_hugging_face(caught.value)
    assert shadowed_hugging_face(ModuleNotFoundError("No module named 'other'", name="other")) is None


def test_default_label_names_of_a_pretrained_model_say_how_to_map_them(tmp_path, capsys):
    model = save_tiny_ast(tmp_path / "ast-default-labels", [f"LABEL_{i}" for i in range(50)])
    assert run(tmp_path, "--classifier", f"hf:{model}") == 2
    error = capsys.readouterr().err
    assert (f"error: --classifier hf:{model} knows 50 classes, as many as the dataset, but other names (transformers' "
            "default names: its config.id2label was never set): 'LABEL_0', 'LABEL_1', … where the dataset has 'dog', "
            "'rooster', …; if its outputs are the dataset's classes in target order, set model.config.id2label = "
            "dict(enumerate(names)) and model.config.label2id") in error
    assert "--dataset folder" in error and "Traceback" not in error


def test_class_names_check():
    flag = "--classifier hf:m"
    check_class_names(flag, ESC50_CLASSES, ESC50_CLASSES)
    check_class_names(flag, [f"class {i}" for i in range(50)], ESC50_CLASSES, names_known=False)
    with pytest.raises(ValueError, match="knows 3 classes, the dataset has 50; use a model of this dataset's"):
        check_class_names(flag, ["a", "b", "c"], ESC50_CLASSES)
    with pytest.raises(ValueError, match=r"the dataset's 50 class names in another order \('rooster', 'dog', …"):
        check_class_names(flag, [ESC50_CLASSES[1], ESC50_CLASSES[0], *ESC50_CLASSES[2:]], ESC50_CLASSES)
    with pytest.raises(ValueError, match="other names: 'a', 'b', … where .*; use a checkpoint trained on"):
        check_class_names("--classifier-checkpoint c.pt", ["a", "b"], ["c", "d"])


def test_a_relative_hf_folder_that_is_not_there_is_named_before_the_hub(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no retries against the hub
    monkeypatch.chdir(tmp_path)
    assert run(tmp_path, "--classifier", "hf:models/my-ast") == 2
    printed = capsys.readouterr()
    folder = tmp_path / "models" / "my-ast"
    assert f"no folder {folder} here; looking models/my-ast up as a Hugging Face hub id" in printed.out
    assert (f"error: --classifier hf:models/my-ast: no folder {folder} exists here, so models/my-ast was looked up as "
            "a Hugging Face hub id, which failed") in printed.err
    assert printed.err.count("\n") == 1 and "Traceback" not in printed.err


def test_a_folder_keeps_its_unlabelled_files(tmp_path):
    names = sorted(p.name for p in (ESC50 / "audio").iterdir())[:9]
    for i, name in enumerate(names):
        folder = tmp_path / ("" if i == 8 else ("a", "b")[i % 2])
        folder.mkdir(exist_ok=True)
        (folder / name).symlink_to(ESC50 / "audio" / name)
    data = open_dataset("folder", str(tmp_path), seed=0)
    assert data.class_names == ["a", "b"] and len(data.meta) == 8  # the unlabelled file (−1) is left out
    given = open_dataset("folder", str(tmp_path), seed=0, classifier_classes=["a", "b"])
    assert sorted(given.meta["target"]) == [-1, 0, 0, 0, 0, 1, 1, 1, 1]  # all evaluated with a given classifier
