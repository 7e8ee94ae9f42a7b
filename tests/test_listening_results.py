"""The listening-test summary: reading the ratings CSVs, MUSHRA post-screening, the table and its files."""
import io
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.commands.listening_results import COLUMNS, plot, read_ratings, screen, summarise, write_summary

CONDITIONS = ("lmac", "l2i rth=0.2", "reference")
QUESTIONS = ("correspondence", "quality")
SAMPLES = (1, 2, 3, 4)


def rating(listener: str, sample: int, condition: str, question: str) -> int:
    """The test's ratings: varied, whole numbers, hidden reference mostly 95 … 100."""
    if condition == "reference":
        if listener == "carol" and sample in (1, 2):
            return 50  # 2 of 4 samples, both questions: 4 of 8 pairs below 90 → excluded
        if listener == "bob" and sample == 3 and question == "quality":
            return 89  # 1 of 8 pairs below 90 (12.5 % ≤ 15 %) → kept
        return 95 + (sample + len(listener)) % 6
    base = {"lmac": 60, "l2i rth=0.2": 30}[condition] + (10 if question == "quality" else 0)
    return base + 7 * sample - 3 * len(listener) + (5 if listener == "carol" else 0)


def rows(listener: str, samples=SAMPLES) -> list[dict]:
    return [{"listener": listener, "sample_id": s, "clip": f"clip{s}.wav", "condition": c, "question": q,
             "rating": rating(listener, s, c, q)}
            for s in samples for q in QUESTIONS for c in CONDITIONS]


@pytest.fixture
def sessions(tmp_path):
    """Four session files: alice in two (samples 1–2, then 3–4), bob and carol in one each."""
    files = {"alice1.csv": rows("alice", (1, 2)), "alice2.csv": rows("alice", (3, 4)),
             "bob.csv": rows("bob"), "carol.csv": rows("carol")}
    paths = []
    for name, content in files.items():
        path = tmp_path / "ratings" / name
        path.parent.mkdir(exist_ok=True)
        pd.DataFrame(content, columns=list(COLUMNS)).to_csv(path, index=False)
        paths.append(path)
    return paths


def test_read_ratings(sessions):
    ratings = read_ratings(sessions)
    assert list(ratings.columns) == [*COLUMNS, "file"]
    assert len(ratings) == 3 * 4 * 3 * 2
    assert ratings["rating"].dtype.kind == "i" and ratings["sample_id"].dtype.kind == "i"
    assert ratings.groupby("listener").size().to_dict() == {"alice": 24, "bob": 24, "carol": 24}


def test_listener_id_stays_text(tmp_path):
    path = tmp_path / "s.csv"
    pd.DataFrame(rows("007"), columns=list(COLUMNS)).to_csv(path, index=False)
    assert set(read_ratings(path)["listener"]) == {"007"}


def test_screen_excludes_exactly_carol(sessions):
    ratings = read_ratings(sessions)
    kept, excluded = screen(ratings)
    assert excluded["listener"].tolist() == ["carol"]
    row = excluded.iloc[0]
    assert (row["reference_ratings"], row["below_threshold"], row["share"]) == (8, 4, 0.5)
    assert set(kept["listener"]) == {"alice", "bob"}  # bob: 1 of 8 below 90 (12.5 %) stays
    assert len(kept) == 48
    # strictly more than 15 %: at 2 of 8 (25 %) bob would go, and a listener without reference ratings goes
    worse = ratings.copy()
    worse.loc[(worse["listener"] == "bob") & (worse["condition"] == "reference") & (worse["sample_id"] == 4),
              "rating"] = 10
    assert set(screen(worse)[1]["listener"]) == {"bob", "carol"}
    no_reference = ratings[~((ratings["listener"] == "alice") & (ratings["condition"] == "reference"))]
    excluded = screen(no_reference)[1]
    assert set(excluded["listener"]) == {"alice", "carol"}
    assert math.isnan(excluded.set_index("listener").loc["alice", "share"])


def test_summarise_against_hand_computed(sessions):
    kept, _ = screen(read_ratings(sessions))
    table = summarise(kept)
    assert table["question"].tolist() == ["correspondence"] * 3 + ["quality"] * 3
    # sorted labels, the hidden reference last within each question
    assert table["condition"].tolist() == ["l2i rth=0.2", "lmac", "reference"] * 2
    for row in table.itertuples():
        values = np.array([rating(listener, s, row.condition, row.question) for listener in ("alice", "bob")
                           for s in SAMPLES],
                          dtype=float)
        n = len(values)
        half = stats.t.ppf(0.975, n - 1) * np.std(values, ddof=1) / np.sqrt(n)
        assert row.mean == pytest.approx(values.mean())
        assert row.ci95 == pytest.approx(half)
        assert (row.n_ratings, row.n_listeners) == (8, 2)
    # a worked value: lmac correspondence, alice 60+7s-15, bob 60+7s-9, s = 1…4
    lmac = np.array([52, 59, 66, 73, 58, 65, 72, 79], dtype=float)
    row = table[(table["question"] == "correspondence") & (table["condition"] == "lmac")].iloc[0]
    assert row["mean"] == pytest.approx(65.5)
    assert row["ci95"] == pytest.approx(2.364624251592785 * lmac.std(ddof=1) / math.sqrt(8))


def test_single_rating_has_no_interval():
    one = pd.DataFrame([{"listener": "a", "sample_id": 1, "clip": "c", "condition": "lmac", "question": "quality",
                         "rating": 70}])
    table = summarise(one)
    assert table["n_ratings"].tolist() == [1] and table["mean"].tolist() == [70.0]
    assert math.isnan(table["ci95"].iloc[0])
    buffer = io.BytesIO()
    plot(table).savefig(buffer, format="png")  # one question, no interval: still drawn
    assert buffer.getvalue()[:4] == b"\x89PNG"


def test_write_summary(sessions, tmp_path):
    out = tmp_path / "out"
    markdown = write_summary(sessions, out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["listening.csv", "listening.md",
                                                                                   "listening.png"]
    assert (out / "listening.md").read_text() == markdown
    assert (out / "listening.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = pd.read_csv(out / "listening.csv")
    expected = summarise(screen(read_ratings(sessions))[0])
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)
    assert written.groupby("question")["condition"].last().tolist() == ["reference", "reference"]
    assert "excluded: carol" in markdown and "4 of 8" in markdown
    assert "bob:" not in markdown and "alice:" not in markdown
    assert "2 of 3 listeners remain" in markdown
    assert "How well does the explanation correspond" in markdown and "quality" in markdown
    assert "65.5 ± " in markdown
    # a second run replaces the files and leaves no temporary file
    write_summary(sessions[:2] + sessions[3:], out)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["listening.csv", "listening.md",
                                                                                   "listening.png"]
    assert "1 of 2 listeners remain" in (out / "listening.md").read_text()


def test_no_listener_left(sessions, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="no listener remains.*BS.1534"):
        write_summary([sessions[3]], out)
    assert not out.exists()


def _write_frame(path, frame):
    frame.to_csv(path, index=False)
    return path


BAD = {
    "missing column": lambda f: f.drop(columns=["question"]),
    "rating above 100": lambda f: f.assign(rating=f["rating"].where(f.index != 3, 101)),
    "rating below 0": lambda f: f.assign(rating=f["rating"].where(f.index != 3, -1)),
    "rating not numeric": lambda f: f.astype({"rating": object}).assign(
        rating=f["rating"].astype(object).where(f.index != 3, "good")),
    "rating fractional": lambda f: f.assign(rating=f["rating"].astype(float).where(f.index != 3, 55.5)),
    "rating empty": lambda f: f.astype({"rating": object}).assign(
        rating=f["rating"].astype(object).where(f.index != 3, "")),
    "sample_id not numeric": lambda f: f.astype({"sample_id": object}).assign(
        sample_id=f["sample_id"].astype(object).where(f.index != 3, "x")),
    "unknown question": lambda f: f.assign(question=f["question"].where(f.index != 3, "loudness")),
    "empty listener": lambda f: f.assign(listener=f["listener"].where(f.index != 3, "")),
    "header only": lambda f: f.iloc[:0],
    "duplicate rating": lambda f: pd.concat([f, f.iloc[[5]]]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_names_the_file(sessions, tmp_path, case):
    bad = _write_frame(tmp_path / f"bad_{case.replace(' ', '_')}.csv",
                       BAD[case](pd.DataFrame(rows("dave"), columns=list(COLUMNS))))
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=bad.name):
        write_summary([*sessions, bad], out)
    assert not out.exists()


def test_missing_and_empty_files(sessions, tmp_path):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(ValueError, match="nowhere.csv.*not found"):
        read_ratings([*sessions, missing])
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.csv.*empty"):
        read_ratings([empty])
    with pytest.raises(ValueError, match="no ratings files"):
        read_ratings([])


def test_duplicate_across_files_names_both(sessions, tmp_path):
    again = _write_frame(tmp_path / "bob_again.csv", pd.DataFrame(rows("bob", (1,)), columns=list(COLUMNS)))
    with pytest.raises(ValueError, match="bob.csv.*bob_again.csv|bob_again.csv.*bob.csv"):
        read_ratings([*sessions, again])


def test_the_command_line(sessions, tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "summary"
    assert main(["listening-results", *map(str, sessions), "--out", str(out)]) == 0
    assert "carol" in capsys.readouterr().out and (out / "listening.png").is_file()
    broken = tmp_path / "broken.csv"
    broken.write_text("listener,rating\nx,50\n")
    assert main(["listening-results", str(broken), "--out", str(tmp_path / "other")]) == 2
    assert "broken.csv" in capsys.readouterr().err and not (tmp_path / "other" / "listening.md").exists()
