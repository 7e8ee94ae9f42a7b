"""``run_benchmark.py rankings`` on the committed CNN14 and AST runs (read, never written): the files it writes,
τ = 1 with a degenerate interval for a run compared with itself, τ equal to SciPy's on method means computed here,
the own-features domain of a waveform model and the shared samples of runs of different lengths, and the
refusals (exit 2, one line)."""
import json
import shutil

import pandas as pd
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.commands.rankings import OUTPUTS
from tests.conftest import ROOT

CNN14 = ROOT / "results" / "esc50-ood-cpu-all"
AST = ROOT / "results" / "esc50-ood-cpu-all-ast"
METRICS = {"AI", "AD", "AG", "FF", "Fid-In", "SPS", "COMP", "Ins-AUC", "Del-AUC", "Loc-AUC", "Loc-mass"}
CONTROLS = {"all-ones", "random", "energy"}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The command's output folder for CNN14 vs AST."""
    out = tmp_path_factory.mktemp("rankings") / "cnn14-ast"
    assert main(["rankings", str(CNN14), str(AST), "--out", str(out)]) == 0
    return out


def copy_run(source, folder, config=None, per_sample=None):
    """A copy of a committed run in ``folder``, with run.json's config updated by ``config`` and per_sample.csv
    passed through ``per_sample`` (a function of the frame)."""
    folder.mkdir(parents=True)
    record = json.loads((source / "run.json").read_text())
    record["config"].update(config or {})
    (folder / "run.json").write_text(json.dumps(record))
    frame = pd.read_csv(source / "per_sample.csv")
    (per_sample or (lambda f: f))(frame).to_csv(folder / "per_sample.csv", index=False)
    return folder


def test_the_command_writes_the_tau_table_the_ranks_and_the_figure(written):
    assert all((written / name).is_file() for name in OUTPUTS)
    taus = pd.read_csv(written / "rankings.csv")
    assert set(taus["metric"]) == METRICS and set(taus["domain"]) == {"listenable", "own features"}
    assert len(taus) == 2 * len(METRICS) and set(taus["n"]) == {200} and set(taus["resamples"]) == {999}
    assert (taus["ci_low"] <= taus["tau"] + 1e-12).all() and (taus["tau"] <= taus["ci_high"] + 1e-12).all()
    assert not any(CONTROLS & set(ranked.split("; ")) for ranked in taus["ranked"])
    assert set(taus["left_out"]) == {"guided-backprop (cnn14 only); guided-gradcam (cnn14 only)"}  # GELU, no ReLU
    assert {"lmac-td", "piq", "occlusion", "lime", "kernel-shap"} <= set(taus["ranked"].iloc[0].split("; "))
    text = (written / "rankings.md").read_text()
    assert "cnn14 vs ast" in text and "+" in text.split("cnn14 vs ast")[1].splitlines()[2]
    assert "own features (cnn14: mel, ast: mel)" in text and "n = 200" in text and "999 resamples (seed 0)" in text
    assert "per pair (explained by one of the two only): cnn14 vs ast: guided-backprop (cnn14 only)" in text
    assert "keeps its rank" in text
    ranks = pd.read_csv(written / "ranks.csv")
    assert set(ranks["classifier"]) == {"cnn14", "ast"} and not CONTROLS & set(ranks["method"])
    assert ranks["rank"].min() == 1


def test_tau_is_scipys_kendalltau_of_the_method_means(written):
    taus = pd.read_csv(written / "rankings.csv")
    cnn14, ast = (pd.read_csv(run / "per_sample.csv") for run in (CNN14, AST))
    for row in taus.to_dict("records"):
        of_a, of_b = (rows[rows["domain"] == row[f"domain_{side}"]] for rows, side in ((cnn14, "a"), (ast, "b")))
        methods = row["ranked"].split("; ")
        assert set(methods) == (set(of_a["method"]) & set(of_b["method"])) - CONTROLS
        a, b = (rows.groupby("method")[row["metric"]].mean().reindex(methods).to_numpy() for rows in (of_a, of_b))
        assert row["tau"] == pytest.approx(stats.kendalltau(a, b).statistic, abs=1e-12), row


def test_a_run_compared_with_itself_has_tau_one_with_a_degenerate_interval(tmp_path):
    out = tmp_path / "self"
    assert main(["rankings", str(CNN14), str(CNN14), "--out", str(out), "--include-controls"]) == 0
    taus = pd.read_csv(out / "rankings.csv")
    assert len(taus) == 2 * len(METRICS)
    for column in ("tau", "ci_low", "ci_high"):
        assert taus[column].tolist() == pytest.approx([1.0] * len(taus), abs=1e-12), column
    assert all(CONTROLS <= set(ranked.split("; ")) for ranked in taus["ranked"])
    ranks = pd.read_csv(out / "ranks.csv")
    assert ranks.groupby(["metric", "domain", "method"])["rank"].nunique().eq(1).all()
    assert f"{len(METRICS)} of {len(METRICS)}" in (out / "rankings.md").read_text()


def test_a_waveform_model_is_compared_on_its_own_features_and_only_shared_samples_are_used(tmp_path):
    waveform = copy_run(AST, tmp_path / "wave", {"classifier": "wav2vec2", "domains": ["listenable", "waveform"]},
                        lambda f: f[f["sample_id"] < 150].replace({"domain": {"mel": "waveform"}}))
    out = tmp_path / "out"
    assert main(["rankings", str(CNN14), str(waveform), "--out", str(out)]) == 0
    taus = pd.read_csv(out / "rankings.csv")
    own = taus[taus["domain"] == "own features"]
    assert set(own["domain_a"]) == {"mel"} and set(own["domain_b"]) == {"waveform"} and set(taus["n"]) == {150}
    text = (out / "rankings.md").read_text()
    assert "own features (cnn14: mel, wav2vec2: waveform)" in text and "cnn14 vs wav2vec2" in text
    assert "evaluated 50 samples that another run did not; only the 150 samples" in text


def refusal_cases(tmp_path):
    """(arguments, text of the message) of each refusal."""
    empty = tmp_path / "empty"
    empty.mkdir()
    no_record = tmp_path / "no-record"
    no_record.mkdir()
    shutil.copy(AST / "per_sample.csv", no_record / "per_sample.csv")
    other_setting = copy_run(AST, tmp_path / "id", {"setting": "id"})
    other_dataset = copy_run(AST, tmp_path / "us8k", {"dataset": "us8k"})
    other_samples = copy_run(AST, tmp_path / "other-clip", per_sample=lambda f: f.assign(
        clip=f["clip"].where(f["sample_id"] != 3, "4-999999-A-0.wav")))
    out = str(tmp_path / "out")
    return [(["rankings", str(CNN14), "--out", out], "RUN_DIR: 1 run given; pass two or more"),
            (["rankings", str(CNN14), str(empty), "--out", out], "no per_sample.csv"),
            (["rankings", str(CNN14), str(no_record), "--out", out], "no run.json"),
            (["rankings", str(CNN14), str(other_setting), "--out", out], "(--setting)"),
            (["rankings", str(CNN14), str(other_dataset), "--out", out], "(--dataset)"),
            (["rankings", str(CNN14), str(other_samples), "--out", out], "sample 3 is clip '4-999999-A-0.wav'"),
            (["rankings", str(CNN14), str(AST), "--out", str(CNN14)], "committed results"),
            (["rankings", str(CNN14), str(AST), "--out", out, "--seed", "-1"], "--seed -1")]


def test_refusals_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    committed = sorted(p.name for p in CNN14.iterdir())
    for arguments, text in refusal_cases(tmp_path):
        assert main(arguments) == 2, arguments
        error = capsys.readouterr().err
        assert error.startswith("error: ") and error.count("\n") == 1 and text in error, (arguments, error)
        assert "Traceback" not in error
    assert not (tmp_path / "out").exists() and sorted(p.name for p in CNN14.iterdir()) == committed
