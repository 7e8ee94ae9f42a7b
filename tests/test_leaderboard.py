"""The leaderboard (docs/leaderboard.md): every committed summary.json holds what its run's table.csv and run.json
give and matches the published schema, the committed page is what ``run_benchmark.py leaderboard`` writes, a run
writes its summary, a run's ranking.csv gives the rank column, and the page's tables sort in a browser. Broken
summaries are refused with exit code 2 (tests/test_bad_inputs.py, with ``broken_results`` below)."""
import json
import shlex
import shutil

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.commands.leaderboard import domain_table, kept_text, leaderboard_page, run_folders
from benchmark.summary import SUMMARY, check_summary
from tests.conftest import ESC50, ROOT

RESULTS = ROOT / "results"
PAGE = ROOT / "docs" / "leaderboard.md"
RUN = "esc50-ood-mixtures-cpu"


def copy_run(results, name: str = RUN):
    """A copy of a committed run folder's table.csv, run.json and summary.json under ``results``."""
    folder = results / name
    folder.mkdir(parents=True)
    for file in ("table.csv", "run.json", SUMMARY):
        shutil.copyfile(RESULTS / name / file, folder / file)
    return folder


def rewrite(folder, change) -> None:
    summary = json.loads((folder / SUMMARY).read_text())
    change(summary)
    (folder / SUMMARY).write_text(json.dumps(summary))


def broken_results(tmp_path) -> dict:
    """Folders of copies of ``RUN`` for the refusals of ``leaderboard`` (tests/test_bad_inputs.py): {missing_field}
    rows[0] without n, {wrong_type} rows[1].mean a string, {other_mean} lmac's AI (rows[10]) 0.9 instead of the
    table's 41.5, {other_key} run.config_key changed, {not_json} a summary cut in half, {extra_method} a row of a
    method the table lacks."""
    def set_row(index, **fields):
        return lambda summary: summary["rows"][index].update(fields)

    changes = {"missing_field": lambda summary: summary["rows"][0].pop("n"), "wrong_type": set_row(1, mean="0.4"),
               "other_mean": set_row(10, mean=0.9), "other_key": lambda s: s["run"].update(config_key="0" * 16),
               "extra_method": lambda s: s["rows"].append({**s["rows"][0], "method": "my-method"})}
    made = {}
    for name, change in changes.items():
        rewrite(copy_run(tmp_path / name), change)
        made[name] = tmp_path / name
    folder = copy_run(tmp_path / "not_json")
    (folder / SUMMARY).write_text((folder / SUMMARY).read_text()[:500])
    made["not_json"] = tmp_path / "not_json"
    return made


def test_every_committed_summary_holds_its_runs_table_and_matches_the_schema():
    folders = {f.name: f for f in run_folders(RESULTS) if (f / SUMMARY).exists()}
    assert {RUN, "esc50-ood-mixtures-cpu-seeds", "esc50-ood-cpu-all-wav2vec2", "controlled-ood-mixtures-cpu"} \
        <= set(folders)
    summaries = {name: check_summary(folder) for name, folder in folders.items()}
    rows = {(r["method"], r["metric"]): r for r in summaries[RUN]["rows"]}
    assert len(rows) == 5 * 10  # saliency, lmac and the three controls × AI … MM, Loc-AUC, Loc-mass
    lmac = rows["lmac", "AI"]  # table.csv: 41.5, interval [35.0, 48.5], marked
    assert (lmac["mean"], lmac["ci_low"], lmac["ci_high"], lmac["top"], lmac["n"]) == (41.5, 35.0, 48.5, True, 200)
    assert (lmac["direction"], lmac["category"], lmac["domain"], lmac["condition"]) == \
        ("higher", "faithfulness", "listenable", "ood mixtures")
    assert (lmac["config_key"], lmac["code"], lmac["classifier_checkpoint"]) == \
        ("9907c3fdfad50108", "5c0191c", "4c943bc11c4e0594")
    assert lmac["settings"]["lambda_l1"] == 0.4 and lmac["settings"]["method"] == "lmac"
    assert rows["saliency", "COMP"]["direction"] == "lower" and rows["saliency", "COMP"]["category"] == "complexity"
    assert (rows["lmac", "MM"]["direction"], rows["lmac", "MM"]["category"], rows["lmac", "MM"]["top"]) == \
        ("none", "other", None)
    assert rows["all-ones", "Fid-In"]["mean"] == 1.0 and rows["all-ones", "Fid-In"]["control"]
    seeds = summaries["esc50-ood-mixtures-cpu-seeds"]
    assert seeds["run"]["training_seeds"] == [0, 1, 2, 3, 4]
    assert seeds["run"]["config_key"].split("+")[0] == "9907c3fdfad50108"  # seed 0 is the plain run's configuration
    assert all(r["seed_sd"] is not None for r in seeds["rows"])
    wav2vec2 = summaries["esc50-ood-cpu-all-wav2vec2"]["rows"]
    assert {r["domain"] for r in wav2vec2} == {"listenable", "waveform"}
    assert ("waveform", "lmac-ft") not in {(r["domain"], r["method"]) for r in wav2vec2}  # n/a rows are left out


def test_the_committed_page_is_what_the_command_writes():
    page = PAGE.read_text()
    assert leaderboard_page(RESULTS, *kept_text(PAGE)) == page, \
        "docs/leaderboard.md is stale: write it again with python run_benchmark.py leaderboard"
    assert "## esc50 · cnn14 · ood mixtures" in page and "### listenable (STFT→Mel)" in page
    assert "<strong>41.50</strong><br><small>[35.00, 48.50]</small>" in page  # lmac's AI in esc50-ood-mixtures-cpu
    assert "## Submitting a method" in page  # the hand-written text below the generated part is kept


def test_a_run_writes_its_summary_and_a_rerun_takes_its_folder(tmp_path):
    out = tmp_path / "out"
    arguments = ["--data-root", str(ESC50), "--limit", "1", "--methods", "saliency", "--controls", "all-ones",
                 "--threads", "1", "--out", str(out), "--cache-dir", str(tmp_path / "cache")]
    assert main(arguments) == 0
    summary = check_summary(out)
    table = pd.read_csv(out / "table.csv")
    assert {(r["method"], r["n"]) for r in summary["rows"]} == {("saliency", 2), ("all-ones", 2)}
    assert {r["metric"]: r["mean"] for r in summary["rows"] if r["method"] == "saliency"}["AD"] == \
        table.loc[table["method"] == "saliency", "AD"].item()
    record = json.loads((out / "run.json").read_text())
    assert summary["run"]["config_key"] == record["config_key"] and "summary.json" in record["files"]
    written = (out / SUMMARY).read_text()
    (out / "trust.csv").write_text("domain,metric,accepted\nlistenable,AD,True\n")  # placed by hand (docs/ranking.md)
    assert main([*arguments, "--resume"]) == 0  # a folder holding summary.json and trust.csv is still the run's own
    assert (out / SUMMARY).read_text() == written
    assert main(["rank", str(out)]) == 0
    assert "trusted" in set(pd.read_csv(out / "ranking.csv")["category"])  # the ranking read the trust table


def test_a_runs_ranking_gives_the_rank_column(tmp_path):
    folder = copy_run(tmp_path / "results")
    out = tmp_path / "page.md"
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert "rank ↓" not in out.read_text()  # no ranking.csv, no rank column
    pd.DataFrame({"domain": ["listenable (STFT→Mel)", "listenable", "listenable"],  # by label or key
                  "method": ["lmac", "saliency", "lmac"], "control": False,
                  "category": ["overall", "overall", "faithfulness"], "mean_rank": [1.25, 2.5, 1.0], "rank_sd": 0.1,
                  "n_metrics": 8, "rank_low": [1.0, 2.0, 1.0], "rank_high": [1.5, 3.0, 1.0]}) \
        .to_csv(folder / "ranking.csv", index=False)
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--out", str(out)]) == 0
    page = out.read_text()
    assert "rank ↓" in page
    assert '<td data-value="1.25">1.25 <small>of 2</small><br><small>[1.00, 1.50]</small></td>' in page
    assert '<td data-value="2.5">2.50 <small>of 2</small><br><small>[2.00, 3.00]</small></td>' in page
    assert page.count('<td data-value="">—</td>') == 3  # the three controls have no overall rank
    (folder / "ranking.csv").write_text("domain,method\nlistenable,lmac\n")
    with pytest.raises(ValueError, match="ranking.csv: no column category, mean_rank, rank_high, rank_low"):
        leaderboard_page(tmp_path / "results", "# Leaderboard\n", "")


@pytest.fixture(scope="module")
def browser():
    from tests.test_report_browser import CHROMEDRIVER, CHROMIUM

    assert CHROMIUM and CHROMEDRIVER, "the browser test needs Debian's chromium and chromium-driver"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def test_a_click_on_a_header_sorts_the_table_best_first_then_reversed(tmp_path, browser):
    rows = pd.DataFrame([{**r, "run": RUN} for r in json.loads((RESULTS / RUN / SUMMARY).read_text())["rows"]])
    rows.loc[(rows["method"] == "random") & (rows["metric"] == "AI"), "mean"] = None  # an empty cell: always last
    page = tmp_path / "table.html"
    script = ROOT / "docs" / "javascripts" / "sortable-tables.js"
    page.write_text(f"<html><body>{domain_table(rows, {})}<script src='{script.as_uri()}'></script></body></html>")
    browser.get(page.as_uri())

    def click(header: str) -> list[str]:
        browser.execute_script("""for (const th of document.querySelectorAll("th[data-column]"))
                                      if (th.textContent === arguments[0]) th.click();""", header)
        return browser.execute_script('return Array.from(document.querySelectorAll("tbody tr"), '
                                      'r => r.cells[0].dataset.value);')

    # AI: lmac 41.5, energy 10.5, all-ones 0, saliency 0 (table order kept among ties), random empty
    assert click("AI ↑") == ["lmac", "energy", "saliency", "all-ones", "random"]
    assert click("AI ↑") == ["saliency", "all-ones", "energy", "lmac", "random"]
    assert click("AD ↓")[0] == "all-ones"  # lower is better: ascending first (all-ones drops nothing)
    assert click("method") == ["all-ones", "energy", "lmac", "random", "saliency"]


# ``leaderboard``'s refusals: each {name} a results folder holding a copy of results/esc50-ood-mixtures-cpu whose
# summary.json is broken (``tests.test_leaderboard.broken_results``); {page} the page to write
LEADERBOARD_CASES = """
leaderboard --results '{missing_field}'    => esc50-ood-mixtures-cpu/summary.json: rows[0]: 'n' is a required property
leaderboard --results '{wrong_type}'       => summary.json: rows[1].mean: '0.4' is not of type 'number', 'null'
leaderboard --results '{other_mean}'       => summary.json: rows[10].mean 0.9 is not 41.5, what table.csv and run.json
leaderboard --results '{other_key}'        => summary.json: run.config_key '0000000000000000' is not '9907c3fdfad50108'
leaderboard --results '{extra_method}'     => summary.json: rows[50]: listenable / my-method / AI is not in table.csv
leaderboard --results '{not_json}'         => summary.json: not readable JSON
leaderboard --results '{missing}'          => --results {missing}: not a folder
leaderboard --results '{other_key}' --out '{missing}/page.md' => --out {missing}/page.md: {missing} does not exist
"""


@pytest.mark.parametrize("line", LEADERBOARD_CASES.strip().splitlines())
def test_leaderboard_refuses_a_broken_summary_with_exit_2_and_one_line(line, tmp_path, capsys):
    made = {**broken_results(tmp_path), "missing": tmp_path / "missing", "page": tmp_path / "page.md"}
    arguments, expected = (part.strip().format(**{k: str(v) for k, v in made.items()}) for part in line.split(" => "))
    arguments = shlex.split(arguments)
    assert main([*arguments, *([] if "--out" in arguments else ["--out", str(made["page"])])]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not made["page"].exists()  # nothing written
