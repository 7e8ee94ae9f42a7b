"""A run touches only what is its own, resumes only the same run, and refuses with a message otherwise: real
ESC-50 clips, tiny profile (docs/running.md, "The output folder" and "Resume")."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

import benchmark.commands.explain
import benchmark.preparation
from benchmark.cli import main
from benchmark.output_folder import write_mark
from foundation.checkpoints import cached_training
from tests.conftest import ESC50

ROOT = Path(__file__).resolve().parents[1]
TRAINING_CLIP = "4-102844-A-49.wav"  # in the training part of the seed-0 split


def arguments(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["--data-root", str(data), "--profile", "tiny", "--limit", "2", "--methods", "saliency", "--controls",
            "none", "--out", str(out), "--cache-dir", str(cache), *extra]


def linked_copy(folder: Path) -> Path:
    """An ESC-50 tree whose clips are links to the shared copy's (one can be replaced without touching it)."""
    (folder / "meta").mkdir(parents=True)
    shutil.copy(ESC50 / "meta" / "esc50.csv", folder / "meta" / "esc50.csv")
    (folder / "audio").mkdir()
    for clip in (ESC50 / "audio").iterdir():
        (folder / "audio" / clip.name).symlink_to(clip)
    return folder


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run (``out``) on a linked copy of the data (``data``) with its cache (``cache``)."""
    root = tmp_path_factory.mktemp("owned")
    assert main(arguments(linked_copy(root / "data"), root / "out", root / "cache")) == 0
    return root


@pytest.fixture
def no_training(monkeypatch):
    def training_started(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(benchmark.preparation, "train_classifier", training_started)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def test_resume_with_the_data_root_spelled_otherwise_is_the_same_run(finished, no_training):
    spelled = finished / "data" / ".." / "data"
    rows = pd.read_csv(finished / "out" / "per_sample.csv")
    assert main(arguments(spelled, finished / "out", finished / "cache", "--resume")) == 0
    pd.testing.assert_frame_equal(pd.read_csv(finished / "out" / "per_sample.csv"), rows)


def test_resume_after_a_training_clip_changed_names_it_before_training(finished, tmp_path, no_training, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished / "out", out)
    data = linked_copy(tmp_path / "data")
    (data / "audio" / TRAINING_CLIP).unlink()
    shutil.copy(ESC50 / "audio" / "4-102871-A-42.wav", data / "audio" / TRAINING_CLIP)
    before = snapshot(out)
    assert main(arguments(data, out, finished / "cache", "--resume")) == 2
    error = capsys.readouterr().err
    assert f"--resume: the run in {out} read other data: training clip audio/{TRAINING_CLIP} changed" in error
    assert snapshot(out) == before


def test_resume_refuses_other_weights_and_a_model_that_would_be_trained_again(finished, tmp_path, no_training,
                                                                               capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    shutil.copytree(finished / "out", out)
    shutil.copytree(finished / "cache", cache)
    cached = next(cache.glob("classifier-*.pt"))
    state = torch.load(cached, weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, cached)  # another draw
    assert main(arguments(finished / "data", out, cache, "--resume")) == 2
    assert f"{cached} is not the model the run used" in capsys.readouterr().err
    cached.unlink()
    assert main(arguments(finished / "data", out, cache, "--resume")) == 2
    assert f"{cached.name} is neither shipped nor in --cache-dir {cache}" in capsys.readouterr().err


def test_report_checks_the_runs_models_and_never_retrains(finished, tmp_path, no_training, capsys):
    run, cache = tmp_path / "run", tmp_path / "cache"
    shutil.copytree(finished / "out", run)
    record = json.loads((run / "run.json").read_text())
    record["config"]["cache_dir"] = str(cache)
    (run / "run.json").write_text(json.dumps(record))
    assert main(["report", str(run), "--samples", "1"]) == 2  # the cache is gone: nothing trains
    assert "is neither shipped nor in --cache-dir" in capsys.readouterr().err
    shutil.copytree(finished / "cache", cache, dirs_exist_ok=True)
    cached = next(cache.glob("classifier-*.pt"))
    torch.save({k: v * 0 for k, v in torch.load(cached, weights_only=True).items()}, cached)
    assert main(["report", str(run), "--samples", "1"]) == 2
    assert "is not the model the run used" in capsys.readouterr().err
    assert not (run / "report" / "index.html").exists()


@pytest.mark.parametrize("damage", ["no manifest", "no entry"])
def test_a_missing_manifest_or_entry_stops_the_main_job_before_training(damage, tmp_path, monkeypatch, no_training,
                                                                        capsys):
    shipped = tmp_path / "reference-models"
    shipped.mkdir()
    for model in (ROOT / "results" / "reference-models").glob("*.pt"):
        (shipped / model.name).symlink_to(model)
    manifest = json.loads((ROOT / "results" / "reference-models" / "manifest.json").read_text())
    record = json.loads((ROOT / "results" / "esc50-ood-mixtures-cpu" / "run.json").read_text())
    classifier = next(f"{m['kind']}-{m['key']}.pt" for m in record["models"] if m["kind"] == "classifier")
    if damage == "no entry":
        manifest["models"] = [m for m in manifest["models"] if m["file"] != classifier]
        (shipped / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(benchmark.preparation, "REFERENCE_MODELS", shipped)
    assert main(["--data-root", str(ESC50), "--out", str(tmp_path / "out"), "--cache-dir",
                 str(tmp_path / "cache")]) == 2
    error = capsys.readouterr().err
    expected = (f"{shipped / 'manifest.json'} is missing" if damage == "no manifest"
                else f"shipped reference model {shipped / classifier} is not listed in {shipped / 'manifest.json'}")
    assert expected in error and "git checkout results/reference-models" in error
    assert not list((tmp_path / "cache").glob("*.pt"))


def test_a_full_cache_device_says_so_and_keeps_what_the_cache_held(tmp_path):
    device = tmp_path / "full"
    device.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(device)]).returncode:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        (device / "earlier.json").write_text("{}")
        (device / "filler").write_bytes(b"\0" * (240 << 10))  # the device is then all but full
        module = torch.nn.Linear(256, 256)  # 257 KB of weights
        with pytest.raises(OSError, match=f"--cache-dir {device}: no space left on its device, so the trained "
                                          "classifier was not cached"):
            cached_training(module, "classifier", {"a": 1}, device, lambda m: {})
        assert sorted(p.name for p in device.iterdir() if not p.name.startswith(".")) == ["earlier.json", "filler"]
    finally:
        subprocess.run(["umount", str(device)])


def test_ctrl_c_during_explain_is_one_line(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmark.commands.explain, "prepare", interrupted)
    assert main(["explain", str(ESC50 / "audio" / TRAINING_CLIP), "--data-root", str(ESC50), "--out",
                 str(tmp_path / "explained"), "--cache-dir", str(tmp_path / "cache"), "--profile", "tiny"]) == 130
    error = capsys.readouterr().err
    assert error.strip().startswith("interrupted: explain stopped") and "Traceback" not in error


def test_an_unknown_command_lists_the_commands():
    result = subprocess.run([sys.executable, "run_benchmark.py", "explian", "x.wav"], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: unknown command 'explian'; the commands are explain, bench")


def test_a_users_audio_or_unfinished_folder_inside_a_run_folder_is_never_replaced(finished, tmp_path, capsys):
    for name, extra in (("audio", ("--save-audio",)), ("unfinished", ())):
        out = tmp_path / name / "out"
        shutil.copytree(finished / "out", out)
        (out / name / "thesis").mkdir(parents=True)
        (out / name / "thesis" / "chapter1.txt").write_text("chapter 1")
        assert main(arguments(finished / "data", out, finished / "cache", *extra)) == 2
        error = capsys.readouterr().err
        assert "was not written by a run (no .benchmark-run.json in it)" in error or "not a run's folder" in error
        assert (out / name / "thesis" / "chapter1.txt").read_text() == "chapter 1"


def test_a_rerun_with_fewer_clips_after_a_kill_is_refused_with_or_without_resume(finished, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(finished / "out", out)
    (out / "unfinished").mkdir()  # as a kill leaves it: the rows so far and the run's mark
    shutil.move(out / "per_sample.csv", out / "unfinished" / "per_sample.csv")
    shutil.copy(out / ".benchmark-run.json", out / "unfinished" / ".benchmark-run.json")
    write_mark(out, {"identity": None})  # killed before it ever finished
    rows = (out / "unfinished" / "per_sample.csv").read_bytes()
    for extra in ((), ("--resume",)):
        assert main(arguments(finished / "data", out, finished / "cache", *extra, "--limit", "1")) == 2  # the last wins
        assert "holds unfinished results of 2 evaluation clips" in capsys.readouterr().err
        assert (out / "unfinished" / "per_sample.csv").read_bytes() == rows


def test_report_names_its_run_json_when_the_data_moved(finished, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished / "out", run)
    record = json.loads((run / "run.json").read_text())
    record["config"]["data_root"] = str(tmp_path / "moved")
    (run / "run.json").write_text(json.dumps(record))
    assert main(["report", str(run), "--samples", "1"]) == 2
    error = capsys.readouterr().err
    assert "esc50 not found" in error and f"{run / 'run.json'} records: restore them there" in error


def test_a_full_disk_under_out_ends_with_one_line_naming_the_folder(finished, tmp_path, capsys):
    device = tmp_path / "small"
    device.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(device)]).returncode:
        pytest.skip("mounting a small tmpfs is not permitted here")
    try:
        assert main(arguments(finished / "data", device / "out", finished / "cache")) == 2
        error = capsys.readouterr().err
        line = error.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bars
        assert line.startswith(f"error: no space left on the device of {device / 'out'}") and "untouched" in line
        assert "Traceback" not in error
    finally:
        subprocess.run(["umount", str(device)])
