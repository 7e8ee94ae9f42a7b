"""The aggregated ranking (LATEC; ``benchmark.aggregation``, ``run_benchmark.py rank``): a constructed run with a
known answer (ranks by the median in each metric's direction, ties sharing the mean rank, category and overall
means and SDs, the trusted rows, a method that always wins holding rank 1 in every resample), LATEC's agreement
test, several runs averaged, and the committed CNN14 run's ranking.csv (read from a copy, never written there)."""
import json
import shlex
import shutil

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.aggregation import COLUMNS, DomainRanks, agreement_tests, read_trust
from benchmark.aggregation_output import RankedRun, aggregate
from benchmark.cli import main
from tests.conftest import ROOT

CNN14 = ROOT / "results" / "esc50-ood-cpu-all"


def constructed(samples: int = 20, seed: int = 0) -> pd.DataFrame:
    """per_sample.csv of 3 methods × 4 ranked metrics (and MM, which has no direction), one domain.

    Medians by construction: a best on every metric; b beats the control random on AI (↑) and COMP (↓), random
    beats b on AD (↓); b and random tie on SPS (both exactly 5). Values of each method lie in disjoint ranges, so
    every resample ranks them alike.
    """
    u = np.random.default_rng(seed).random((3, samples))  # in [0, 1)
    values = {"AI": [10 + u[0], 5 + u[1], 2 + u[2]], "AD": [u[0], 20 + u[1], 15 + u[2]],
              "SPS": [10 + u[0], np.full(samples, 5.0), np.full(samples, 5.0)],
              "COMP": [u[0], 5 + u[1], 8 + u[2]], "MM": [u[0], 2 * u[1], 3 * u[2]]}
    rows = [{"sample_id": i, "domain": "listenable", "method": method, "label": 0, "predicted": 0,
             **{metric: values[metric][m][i] for metric in values}}
            for m, method in enumerate(("a", "b", "random")) for i in range(samples)]
    return pd.DataFrame(rows)


def write_run(folder, per_sample, seed=0, **config):
    """A finished run's folder: per_sample.csv and run.json (its config)."""
    folder.mkdir(parents=True)
    per_sample.to_csv(folder / "per_sample.csv", index=False)
    (folder / "run.json").write_text(json.dumps({"config": {"seed": seed, **config}}))
    return folder


def rows_of(table: pd.DataFrame) -> dict:
    return {(r["method"], r["category"]): r for r in table.to_dict("records")}


def test_ranks_ties_direction_category_means_and_a_method_that_always_wins():
    ranking = aggregate([RankedRun("constructed", constructed(), None)], seed=3)
    table = ranking.table
    assert list(table.columns) == list(COLUMNS)
    assert set(table["category"]) == {"faithfulness", "complexity", "overall"}  # no trust table: no trusted rows
    rows = rows_of(table)
    expected = {("a", "faithfulness"): (1, 0, 2), ("b", "faithfulness"): (2.5, 0.5, 2),  # AI: b 2; AD ↓: b 3
                ("random", "faithfulness"): (2.5, 0.5, 2),
                ("a", "complexity"): (1, 0, 2), ("b", "complexity"): (2.25, 0.25, 2),  # SPS tie 2.5; COMP: b 2
                ("random", "complexity"): (2.75, 0.25, 2),
                ("a", "overall"): (1, 0, 4), ("b", "overall"): (2.375, 0.125, 4),
                ("random", "overall"): (2.625, 0.125, 4)}
    for key, (mean, sd, count) in expected.items():
        row = rows[key]
        assert (row["mean_rank"], row["rank_sd"], row["n_metrics"]) == pytest.approx((mean, sd, count)), key
        assert row["rank_low"] == pytest.approx(mean) and row["rank_high"] == pytest.approx(mean), key
    assert [rows[m, "overall"]["rank1_frequency"] for m in ("a", "b", "random")] == [1.0, 0.0, 0.0]
    assert table.loc[table["category"] != "overall", "rank1_frequency"].isna().all()
    assert table.set_index("method")["control"].to_dict() == {"a": False, "b": False, "random": True}
    assert np.array_equal(ranking.frequencies["listenable"].to_numpy(), np.eye(3))  # positions 1, 2, 3 always
    assert "MM" not in ranking.notes[0].split("ranked:")[1].split("(")[0]


def test_the_bootstrap_interval_holds_the_ranks_a_resample_can_give():
    per_sample = constructed(samples=30)
    noisy = per_sample["method"] == "b"
    per_sample.loc[noisy, "AI"] = np.random.default_rng(1).random(noisy.sum()) * 20  # b's AI median near a's
    ranking = aggregate([RankedRun("constructed", per_sample, None)], seed=0, resamples=199)
    rows = rows_of(ranking.table)
    a, b = rows["a", "overall"], rows["b", "overall"]
    # b's AI median (9.39) is near a's (10.63): in some resamples b ranks first on AI, a second, so a's
    # faithfulness is 1.5 and its overall 1.25, b's 1.75 and 2.125; b never takes a's overall rank 1
    assert (a["mean_rank"], a["rank_low"], a["rank_high"]) == pytest.approx((1, 1, 1.25))
    assert (b["mean_rank"], b["rank_low"], b["rank_high"]) == pytest.approx((2.375, 2.125, 2.375))
    frequencies = ranking.frequencies["listenable"]
    assert np.allclose(frequencies.to_numpy(), np.eye(3))  # each method holds one position per resample


def test_trusted_rows_use_only_the_metrics_the_trust_table_accepts(tmp_path):
    pd.DataFrame({"domain": ["listenable"] * 4, "metric": ["AI", "AD", "SPS", "COMP"],
                  "accepted": [True, False, True, False]}).to_csv(tmp_path / "trust.csv", index=False)
    trust = read_trust(tmp_path)
    assert trust == {"listenable": {"AI", "SPS"}}
    rows = rows_of(aggregate([RankedRun("constructed", constructed(), trust)], seed=0).table)
    # faithfulness over AI only: b 2, random 3; complexity over SPS only: tie 2.5
    assert rows["b", "trusted"]["mean_rank"] == pytest.approx(2.25)
    assert rows["random", "trusted"]["mean_rank"] == pytest.approx(2.75)
    assert rows["a", "trusted"]["n_metrics"] == 2 and rows["a", "overall"]["n_metrics"] == 4
    accepts_none = aggregate([RankedRun("constructed", constructed(), {"listenable": set()})], seed=0)
    assert "trusted" not in set(accepts_none.table["category"])
    assert any(note.endswith("accepts (in every run): listenable: none, so no trusted rows")
               for note in accepts_none.notes)


def test_the_agreement_test_is_levenes_against_uniform_random_ranks():
    ranks = np.array([[1.0, 1, 1, 1], [3, 1, 3, 1], [2, 3, 2, 3]])[None]  # (1, M = 3, K = 4 faithfulness metrics)
    tests = agreement_tests(DomainRanks("mel", ["x", "y", "z"], ["AI", "AD", "AG", "FF"], ranks))
    x, y, z = tests.to_dict("records")
    assert x["variance"] == 0 and x["random_variance"] == pytest.approx(8 / 12)
    reference = np.tile([1.0, 2, 3], 33334)
    assert x["p_value"] == pytest.approx(stats.levene([1, 1, 1, 1], reference, center="median").pvalue)
    assert x["p_value"] < 0.01 and x["agrees"]  # the same rank from every metric
    assert y["variance"] == 1 and not y["agrees"]  # more spread than random ranks: never "agree"
    assert z["variance"] == 0.25 and z["p_value"] > 0.1 and not z["agrees"]


def test_several_runs_are_aggregated_by_the_mean_of_their_ranks(tmp_path):
    first = write_run(tmp_path / "one", constructed(seed=0))
    swapped = constructed(seed=1)
    swapped["method"] = swapped["method"].map({"a": "b", "b": "a", "random": "random"})  # b wins this run
    second = write_run(tmp_path / "two", swapped, setting="clean")
    assert main(["rank", str(first), str(second), "--out", str(tmp_path / "out")]) == 0
    rows = rows_of(pd.read_csv(tmp_path / "out" / "ranking.csv"))
    assert rows["a", "overall"]["mean_rank"] == pytest.approx((1 + 2.375) / 2)
    assert rows["b", "overall"]["mean_rank"] == pytest.approx((2.375 + 1) / 2)
    assert rows["a", "overall"]["rank1_frequency"] == 1.0 and rows["b", "overall"]["rank1_frequency"] == 1.0  # a tie
    assert "2 runs, aggregated by the mean of their per-run ranks" in (tmp_path / "out" / "ranking.md").read_text()


def test_the_committed_cnn14_run_gets_its_ranking_in_its_own_folder(tmp_path):
    run = tmp_path / "esc50-ood-cpu-all"
    run.mkdir()
    for name in ("per_sample.csv", "run.json"):
        shutil.copy(CNN14 / name, run / name)
    assert main(["rank", str(run)]) == 0
    table = pd.read_csv(run / "ranking.csv")
    per_sample = pd.read_csv(run / "per_sample.csv")
    methods = per_sample.groupby("domain", sort=False)["method"].nunique().to_dict()
    assert methods == {"listenable": 20, "mel": 18}
    assert len(table) == 4 * (20 + 18)  # faithfulness, complexity, localisation, overall
    counts = table.groupby("category")["n_metrics"].agg(["min", "max"]).to_dict("index")
    assert counts == {"faithfulness": {"min": 7, "max": 7}, "complexity": {"min": 2, "max": 2},
                      "localisation": {"min": 2, "max": 2}, "overall": {"min": 11, "max": 11}}
    assert set(table.loc[table["control"], "method"]) == {"all-ones", "random", "energy"}
    assert (table["rank_low"] <= table["rank_high"]).all() and table["mean_rank"].between(1, 20).all()
    overall = table[table["category"] == "overall"]
    assert (overall.groupby("domain")["rank1_frequency"].sum() >= 1 - 1e-9).all()
    markdown = (run / "ranking.md").read_text()
    assert "no trust.csv in the run's folder: no trusted rows" in markdown and "999 bootstrap resamples" in markdown


# ``rank``'s refusals: {run} a constructed finished run (esc50 ood mixtures), {fewer} the same with a sample less,
# {curves} the same with an Ins-AUC column, {bad_trust} the same with a trust.csv naming an unknown domain
RANK_CASES = """
rank '{missing}'                               => RUN_DIR {missing}: no per_sample.csv
rank '{run}' '{fewer}' --out '{out}'           => runs of one condition (esc50 ood mixtures) with different sample ids
rank '{run}' '{curves}' --out '{out}'          => rank different metric columns: Ins-AUC ({curves} only)
rank '{run}' '{run}' --out '{committed}'       => is the repository's committed results
rank '{run}' --seed -1                         => --seed -1: must be a non-negative integer
rank '{bad_trust}'                             => trust.csv: row 2: domain 'nowhere' is none of listenable, mel
"""


@pytest.mark.parametrize("line", RANK_CASES.strip().splitlines())
def test_rank_refuses_runs_it_cannot_aggregate_with_exit_2_and_one_line(line, tmp_path, capsys):
    frame = constructed()
    made = {"missing": tmp_path / "missing", "committed": ROOT / "results" / "esc50-ood-mixtures-cpu",
            "out": tmp_path / "out", "run": write_run(tmp_path / "run", frame),
            "fewer": write_run(tmp_path / "fewer", frame[frame["sample_id"] > 0]),
            "curves": write_run(tmp_path / "curves", frame.assign(**{"Ins-AUC": 0.5})),
            "bad_trust": write_run(tmp_path / "bad", frame)}
    (made["bad_trust"] / "trust.csv").write_text("domain,metric,accepted\nnowhere,AI,yes\n")
    arguments, expected = (part.strip() for part in line.split(" => "))
    arguments = [a.format(**{k: str(v) for k, v in made.items()}) for a in shlex.split(arguments)]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert expected.format(**{k: str(v) for k, v in made.items()}) in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert not (made["out"] / "ranking.csv").exists() and not (made["run"] / "ranking.csv").exists()
