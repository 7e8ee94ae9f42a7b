"""End to end through the CLI on real ESC-50 clips, tiny profile: outputs, caching, resume, errors."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

import benchmark.preparation
import methods.lmac
from benchmark.cli import main
from benchmark.config import RunConfig
from foundation.files import sha256_of
from tests.conftest import ESC50

METRICS = ["AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "MM"]


def run_cli(out, cache, *extra):
    return main(["--dataset", "esc50", "--setting", "ood", "--data-root", str(ESC50), "--profile", "tiny",
                 "--limit", "2", "--methods", "saliency,lmac,all-ones", "--domains", "listenable,mel",
                 "--out", str(out), "--cache-dir", str(cache), *extra])


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    assert run_cli(root / "out", root / "cache") == 0
    return root


def test_outputs(first_run, capsys):
    out = first_run / "out"
    per_sample = pd.read_csv(out / "per_sample.csv")
    # 2 base clips × 2 contaminants; saliency, L-MAC (a decoder per domain) and all-ones in both domains,
    # and the control rows random and energy that every run adds by default
    assert len(per_sample) == 4 * 10
    assert set(per_sample["sample_id"]) == {0, 1, 2, 3}
    assert per_sample.groupby(["domain", "method"]).size().to_dict() == {
        (domain, method): 4 for domain in ("listenable", "mel")
        for method in ("saliency", "lmac", "all-ones", "random", "energy")}
    assert per_sample[METRICS].drop(columns=["SPS", "COMP"]).notna().all().all()
    ones = per_sample[per_sample["method"] == "all-ones"]
    assert (ones["Fid-In"] == 1).all() and (ones["MM"] == 1).all()
    assert per_sample["contaminant"].ne(per_sample["clip"]).all()

    table = pd.read_csv(out / "table.csv")
    assert list(table.columns[:3]) == ["domain", "method", "control"]
    assert [c for c in table.columns if c in METRICS] == METRICS
    assert table["control"].tolist() == [False, False, True, True, True] * 2
    for metric in (*METRICS, "Loc-AUC", "Loc-mass"):  # every cell has its interval around its mean
        assert (table[f"{metric}_ci_low"] <= table[metric] + 1e-12).all()
        assert (table[metric] <= table[f"{metric}_ci_high"] + 1e-12).all()
    assert "Ins-AUC" not in table  # the curves are opt-in
    assert "\\toprule" in (out / "table.tex").read_text() and (out / "figure.png").read_bytes()[:4] == b"\x89PNG"
    assert table.loc[table["method"] == "lmac", "n"].tolist() == [4, 4]
    markdown = (out / "table.md").read_text()
    assert "AI ↑" in markdown and "AD ↓" in markdown and "partial copy" in markdown
    assert "mel rows: masks on the 80-band mel grid are not listenable; no WAV is written" in markdown

    record = json.loads((out / "run.json").read_text())
    assert record["config"]["profile"] == "tiny"
    assert record["split"]["counts"] == {"train": 257, "valid": 43, "evaluation": 100, "contaminant_pool": 43}
    assert set(record["split"]["shared_recordings"].values()) == {0}
    assert record["files"]["per_sample.csv"] == {"bytes": (out / "per_sample.csv").stat().st_size,
                                                 "sha256": sha256_of(out / "per_sample.csv")}
    assert record["evaluated_samples"] == 4 and "torch" in record["versions"]
    ranking = pd.read_csv(out / "ranking.csv")  # the aggregated ranking beside the tables (docs/ranking.md)
    overall = ranking[ranking["category"] == "overall"]
    assert len(overall) == 2 * 5 and overall.groupby("domain")["mean_rank"].min().le(5).all()
    assert set(overall.loc[overall["control"], "method"]) == {"all-ones", "random", "energy"}
    assert "ranking.csv" in record["files"] and "aggregated ranking" in (out / "ranking.md").read_text()


def test_second_run_reuses_checkpoints(first_run, monkeypatch):
    def must_not_train(*args, **kwargs):
        raise AssertionError("a cached model was trained again")

    monkeypatch.setattr(benchmark.preparation, "train_classifier", must_not_train)
    monkeypatch.setattr(methods.lmac.LMACExplainer, "_train", must_not_train)
    assert run_cli(first_run / "again", first_run / "cache") == 0
    first = pd.read_csv(first_run / "out" / "table.csv")
    pd.testing.assert_frame_equal(first, pd.read_csv(first_run / "again" / "table.csv"))


def test_interrupted_run_resumes(first_run):
    out = first_run / "out"
    complete = (out / "table.csv").read_text()
    per_sample = pd.read_csv(out / "per_sample.csv")
    lines = (out / "per_sample.csv").read_text().splitlines(keepends=True)
    (out / "per_sample.csv").write_text("".join(lines[:8]) + lines[8][:30])  # killed while writing a row
    assert run_cli(out, first_run / "cache", "--resume") == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_sample.csv"), per_sample)
    assert (out / "table.csv").read_text() == complete


def test_rerun_without_resume_replaces_the_results(first_run, capsys):
    out = first_run / "out"
    per_sample = pd.read_csv(out / "per_sample.csv")
    assert run_cli(out, first_run / "cache") == 0
    assert "will be replaced when this run finishes" in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / "per_sample.csv"), per_sample)


def test_run_killed_with_sigkill_resumes_to_the_same_tables(first_run, tmp_path):
    arguments = ["--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "4",
                 "--methods", "smoothgrad,all-ones", "--domains", "listenable,mel", "--batch-size", "2",
                 "--cache-dir", str(first_run / "cache")]
    assert main([*arguments, "--out", str(tmp_path / "whole")]) == 0
    rows = len(pd.read_csv(tmp_path / "whole" / "per_sample.csv"))
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "run_benchmark.py", *arguments, "--out", str(killed)],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    written = killed / "unfinished" / "per_sample.csv"
    while process.poll() is None and not (written.exists() and written.read_text().count("\n") >= 3):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    assert 2 <= written.read_text().count("\n") - 1 < rows
    assert not (killed / "per_sample.csv").exists() and not (killed / "table.md").exists()  # nothing finished
    assert main([*arguments, "--out", str(killed), "--resume"]) == 0
    assert not written.parent.exists()
    written = killed / "per_sample.csv"
    key = ["domain", "method", "sample_id"]
    pd.testing.assert_frame_equal(
        pd.read_csv(written).sort_values(key, ignore_index=True),
        pd.read_csv(tmp_path / "whole" / "per_sample.csv").sort_values(key, ignore_index=True))
    for name in ("table.csv", "table.md"):
        assert (killed / name).read_text() == (tmp_path / "whole" / name).read_text()


def test_other_configuration_refuses_to_mix_results(first_run, capsys):
    assert run_cli(first_run / "out", first_run / "cache", "--seed", "1") == 2
    assert "another configuration" in capsys.readouterr().err


def test_missing_dataset_exits_2_and_says_how_to_get_it(tmp_path, capsys):
    code = main(["--data-root", str(tmp_path / "nowhere"), "--profile", "tiny", "--out", str(tmp_path / "o")])
    assert code == 2
    message = capsys.readouterr().err
    assert "ESC50_ROOT" in message and "--data-root" in message and "ESC-50" in message


def test_the_readme_explainer_example_runs_through_the_cli(first_run, tmp_path, monkeypatch):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Add your own explainer"):]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.splitlines()) <= 30
    (tmp_path / "my_explainer.py").write_text(example)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    assert main(["--data-root", str(ESC50), "--profile", "tiny", "--limit", "1", "--import", "my_explainer",
                 "--methods", "loud-bins,saliency", "--set", "loud-bins.power=3", "--out", str(out),
                 "--cache-dir", str(first_run / "cache")]) == 0
    per_sample = pd.read_csv(out / "per_sample.csv")
    assert set(per_sample["method"]) == {"loud-bins", "saliency", "all-ones", "random", "energy"}  # + the controls
    loud = per_sample[per_sample["method"] == "loud-bins"]
    assert loud[METRICS].notna().all().all() and (loud["MM"] < 1).all()
    assert json.loads((out / "run.json").read_text())["methods"]["loud-bins"] == {"method": "loud-bins", "power": 3}


def test_explain_one_file_writes_listenable_audio_and_a_picture(first_run, tmp_path, capsys):
    clip = ESC50 / "audio" / "4-102871-A-42.wav"  # a siren
    common = ["--profile", "tiny", "--data-root", str(ESC50), "--cache-dir", str(first_run / "cache"),
              "--out", str(tmp_path)]
    assert main(["explain", str(clip), "--method", "lmac", *common]) == 0
    assert "predicted" in capsys.readouterr().out
    interpretation, rate = sf.read(tmp_path / "4-102871-A-42-lmac.wav")
    original, _ = sf.read(tmp_path / "4-102871-A-42-input.wav")
    assert rate == 16000 and len(interpretation) == len(original) == 80000
    assert np.sqrt(np.mean(interpretation**2)) > 1e-3  # not silent
    assert (tmp_path / "4-102871-A-42-lmac.png").stat().st_size > 10_000
    assert main(["explain", str(clip), "--method", "all-ones", *common]) == 0
    kept, _ = sf.read(tmp_path / "4-102871-A-42-all-ones.wav")
    assert np.abs(kept - original).max() <= 1e-4  # an all-ones mask gives the input back


def test_save_audio_writes_each_samples_interpretations(first_run, tmp_path):
    assert run_cli(tmp_path / "out", first_run / "cache", "--save-audio") == 0
    written = sorted(p.name for p in (tmp_path / "out" / "audio").iterdir() if not p.name.startswith("."))
    assert written[:6] == ["0000-all-ones.wav", "0000-energy.wav", "0000-input.wav", "0000-lmac.wav",
                           "0000-random.wav", "0000-saliency.wav"]
    assert len(written) == 4 * 6  # 4 samples × (input + 5 methods), listenable only: mel masks write none


def _snapshot(folder):
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())
            if path.is_file() and not path.name.startswith(".")}  # the run's lock and mark are not results


def test_a_rerun_that_fails_leaves_the_earlier_results_byte_identical(first_run, tmp_path, monkeypatch):
    out = tmp_path / "out"
    shutil.copytree(first_run / "out", out)
    before = _snapshot(out)
    assert set(before) == {"per_sample.csv", "table.csv", "table.md", "table.tex", "figure.png", "ranking.csv",
                           "ranking.md", "summary.json", "run.json"}
    assert run_cli(out, first_run / "cache", "--batch-size", "0") == 2  # fails before anything
    assert _snapshot(out) == before

    def interrupted_training(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C half-way through training the classifier

    monkeypatch.setattr(benchmark.preparation, "train_classifier", interrupted_training)
    assert run_cli(out, tmp_path / "empty-cache") == 130  # same configuration, a cache that must train
    assert _snapshot(out) == before


def test_a_smaller_limit_is_refused_and_keeps_every_finished_row(first_run, tmp_path, capsys):
    out = tmp_path / "out"
    shutil.copytree(first_run / "out", out)  # --limit 2: 4 samples
    before = _snapshot(out)
    for extra in ((), ("--resume",)):
        assert run_cli(out, first_run / "cache", *extra, "--limit", "1") == 2
        error = capsys.readouterr().err
        assert f"--limit 1: {out} holds results of 2 evaluation clips" in error and "pass --limit 2" in error
        assert _snapshot(out) == before


def test_resume_with_a_larger_limit_keeps_the_rows_and_adds_the_new_samples(first_run, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run / "out", out)
    before = pd.read_csv(out / "per_sample.csv")
    assert run_cli(out, first_run / "cache", "--resume", "--limit", "3") == 0
    after = pd.read_csv(out / "per_sample.csv")
    assert set(after["sample_id"]) == set(range(6))
    pd.testing.assert_frame_equal(after[after["sample_id"] < 4].reset_index(drop=True), before)


def test_a_same_named_copy_with_other_audio_trains_a_new_classifier(tmp_path):
    copies = {}
    for name in ("first", "second"):
        root = copies[name] = tmp_path / name
        (root / "meta").mkdir(parents=True)
        (root / "audio").mkdir()
        shutil.copy(ESC50 / "meta" / "esc50.csv", root / "meta" / "esc50.csv")
        for clip in (ESC50 / "audio").iterdir():
            (root / "audio" / clip.name).symlink_to(clip)
    first_training_clip = "4-102844-A-49.wav"  # in the training part of the seed-0 split
    replaced = copies["second"] / "audio" / first_training_clip
    replaced.unlink()
    shutil.copy(ESC50 / "audio" / "4-102871-A-42.wav", replaced)  # same name, other audio
    for name, root in copies.items():
        assert main(["--data-root", str(root), "--profile", "tiny", "--methods", "saliency", "--limit", "1",
                     "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / f"out-{name}")]) == 0
    classifiers = sorted((tmp_path / "cache").glob("classifier-*.pt"))
    assert len(classifiers) == 2
    keys = [json.loads((tmp_path / f"out-{n}" / "run.json").read_text())["classifier"]["checkpoint"] for n in copies]
    assert keys[0] != keys[1]
    assert main(["--data-root", str(copies["first"]), "--profile", "tiny", "--methods", "saliency", "--limit", "1",
                 "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out-again")]) == 0
    assert len(list((tmp_path / "cache").glob("classifier-*.pt"))) == 2  # the same audio reuses its classifier


def test_a_nan_map_stops_the_run_with_exit_2_naming_the_method(first_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(methods.lmac.LMACExplainer, "attribute",
                        lambda self, model, x, target, representations=None: x[:, :425] * torch.nan)
    assert run_cli(tmp_path / "out", first_run / "cache") == 2
    error = capsys.readouterr().err
    assert "lmac returned NaN or infinite values" in error and "Traceback" not in error
    assert not (tmp_path / "out" / "per_sample.csv").exists()


def test_the_classifier_trains_the_same_from_every_command(tmp_path):
    common = ["--data-root", str(ESC50), "--profile", "tiny"]
    torch.manual_seed(123)  # whatever ran before in the process
    assert main(["select-lmac-l1", *common, "--grid", "0.4", "--cache-dir", str(tmp_path / "a"),
                 "--out", str(tmp_path / "selection")]) == 0
    assert main([*common, "--methods", "saliency", "--limit", "1", "--cache-dir", str(tmp_path / "b"),
                 "--out", str(tmp_path / "run")]) == 0
    first, second = (torch.load(next((tmp_path / c).glob("classifier-*.pt")), weights_only=True) for c in "ab")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_seeds_train_once_per_seed_and_report_the_spread(first_run, tmp_path):
    out = tmp_path / "seeds"
    assert run_cli(out, first_run / "cache", "--seeds", "0,1", "--curves") == 0
    runs = {s: json.loads((out / f"seed-{s}" / "run.json").read_text()) for s in (0, 1)}
    # seed 0 is the plain run's configuration (same cached models, same values); seed 1 trained its own
    assert runs[0]["classifier"]["checkpoint"] == json.loads((first_run / "out" / "run.json").read_text())[
        "classifier"]["checkpoint"] != runs[1]["classifier"]["checkpoint"]
    assert runs[1]["config"]["training_seed"] == 1 and runs[0]["config"]["training_seed"] is None
    plain = pd.read_csv(first_run / "out" / "per_sample.csv")
    seeds = {s: pd.read_csv(out / f"seed-{s}" / "per_sample.csv") for s in (0, 1)}
    pd.testing.assert_frame_equal(seeds[0][plain.columns], plain)
    assert seeds[0]["clip"].tolist() == seeds[1]["clip"].tolist()  # the same samples, whatever the seed
    assert {"Ins-AUC", "Del-AUC", "Ins@1%", "Del@50%"} <= set(seeds[1].columns)

    averaged = pd.read_csv(out / "per_sample_seed_mean.csv")
    both = seeds[0].merge(seeds[1], on=["domain", "method", "sample_id"])
    merged = averaged.merge(both, on=["domain", "method", "sample_id"])
    assert len(merged) == len(plain) and np.allclose(merged["FF"], (merged["FF_x"] + merged["FF_y"]) / 2)
    table = pd.read_csv(out / "table.csv")
    per_seed = [pd.read_csv(out / f"seed-{s}" / "table.csv")["FF"] for s in (0, 1)]
    assert np.allclose(table["FF_seed_sd"], np.abs(per_seed[0] - per_seed[1]) / np.sqrt(2))
    half_width = 12.706204736 * table["FF_seed_sd"] / np.sqrt(2)  # Student-t, 1 degree of freedom
    assert np.allclose(table["FF_seed_ci_high"] - table["FF_seed_ci_low"], 2 * half_width)
    assert np.allclose(table["FF"], (per_seed[0] + per_seed[1]) / 2)
    markdown = (out / "table.md").read_text()
    assert "(σ " in markdown and ", seeds ± " in markdown and "Ins-AUC" in table
    assert json.loads((out / "seeds.json").read_text())["training_seeds"] == [0, 1]


def test_bad_seeds_exit_2(tmp_path, capsys):
    assert run_cli(tmp_path / "o", tmp_path / "cache", "--seeds", "1,1") == 2
    assert "--seeds" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_on_cuda_the_batch_size_is_part_of_the_identity():
    assert RunConfig(device="cuda", batch_size=4).identity() != RunConfig(device="cuda", batch_size=8).identity()
    assert RunConfig(device="cpu", batch_size=4).identity() == RunConfig(device="cpu", batch_size=8).identity()
