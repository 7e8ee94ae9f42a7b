"""``build_report`` on a real tiny-profile run (ESC-50 clips): a self-contained static folder,
media that play and stay put, the best values marked, a blind MUSHRA-style listening page."""
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from benchmark.cli import main
from benchmark.commands.report import build_report, select_samples
from tests.conftest import ESC50

METHODS = ["saliency", "lmac", "all-ones"]
HIDDEN = {"script", "style", "textarea"}


class Page(HTMLParser):
    """Every start tag with its attributes, the visible text, and the table rows as (class, text) cells."""

    def __init__(self, path: Path):
        super().__init__()
        self.tags, self.text, self.rows, self._hidden = [], [], [], 0
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._hidden += tag in HIDDEN
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th") and self.rows:
            self.rows[-1].append([attrs.get("class", ""), ""])

    def handle_endtag(self, tag):
        self._hidden -= tag in HIDDEN

    def handle_data(self, data):
        if not self._hidden:
            self.text.append(data)
            if self.rows and self.rows[-1]:
                self.rows[-1][-1][1] += data.strip()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    cache, out = root / "cache", root / "run"
    assert main(["--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "3",
                 "--methods", ",".join(METHODS), "--controls", "none", "--domains", "listenable,mel",
                 "--out", str(out), "--cache-dir", str(cache)]) == 0
    index = build_report(out, samples=4)
    assert index == out / "report" / "index.html"
    media = {p: p.stat().st_mtime_ns for p in (out / "report").rglob("*") if p.suffix in (".wav", ".png")}
    return out, media


def selected(report: Path) -> list[int]:
    return [int(a["id"].removeprefix("sample-")) for tag, a in Page(report / "index.html").tags
            if tag == "section" and "id" in a]


def test_pages_are_self_contained(run):
    report = run[0] / "report"
    for name in ("index.html", "listening.html"):
        page = Page(report / name)
        assert not any(tag == "link" or (tag == "script" and "src" in a) for tag, a in page.tags)
        references = [a[k] for tag, a in page.tags for k in ("src", "href") if k in a]
        assert any(r.endswith(".wav") for r in references) and any(r.startswith("audio/") for r in references)
        for reference in references:
            assert "//" not in reference and not reference.startswith("/") and ":" not in reference, reference
            target = (report / reference).resolve()
            assert target.is_file() and report.resolve() in target.parents, reference
        assert not re.search(r"https?://", (report / name).read_text(encoding="utf-8"))


def test_media(run):
    out, media = run
    ids = selected(out / "report")
    # input and methods: a WAV and a PNG each; the listening test: one neutral-named copy per condition
    assert len(media) == len(ids) * ((1 + len(METHODS)) * 2 + len(METHODS) + 1)
    for path in media:
        if path.suffix == ".wav":
            info = sf.info(path)
            assert info.samplerate == 16000 and info.channels == 1 and info.frames == 80000
        else:
            assert path.stat().st_size <= 60_000
    # an all-ones mask gives the input back
    for sample_id in ids:
        ones, _ = sf.read(out / "report" / "audio" / f"{sample_id:04d}-all-ones.wav")
        given, _ = sf.read(out / "report" / "audio" / f"{sample_id:04d}-input.wav")
        assert abs(ones - given).max() < 1e-3


def test_selection_is_reproducible_and_spread(run):
    out = run[0]
    per_sample = pd.read_csv(out / "per_sample.csv")
    ids = selected(out / "report")
    assert ids == select_samples(per_sample, 4, 0) == select_samples(per_sample, 4, 0) == sorted(ids)
    labels = per_sample.drop_duplicates("sample_id").set_index("sample_id")["label"]
    assert len(ids) == 4 and labels[ids].nunique() == min(4, labels.nunique())


def test_table_shows_the_intervals_and_the_marks_of_table_csv(run):
    page = Page(run[0] / "report" / "index.html")
    header = next(row for row in page.rows if any(text == "Fid-In ↑" for _, text in row))
    names = [text for _, text in header]
    table = [row for row in page.rows if len(row) == len(names) and row is not header]
    ones = [row for row in table if row[1][1] == "all-ones"]
    assert len(ones) == 2  # listenable and mel blocks
    for row in ones:
        assert row[names.index("Fid-In ↑")] == ["best", "1.00 ± 0.00"]  # a control, not worse than the best
        assert row[names.index("MM")][0] == ""  # no direction: never marked
    csv = pd.read_csv(run[0] / "table.csv")
    assert len(table) == len(csv) and "Loc-AUC ↑" in names
    for row, expected in zip(table, csv.to_dict("records")):
        for metric in ("AI", "FF", "Loc-AUC"):
            cell = row[names.index(f"{metric} ↑")]
            assert (cell[0] == "best") == bool(expected[f"{metric}_top"])
            assert cell[1].startswith(f"{expected[metric]:.2f} ± ") or cell[1].startswith(f"{expected[metric]:.3f} ± ")


def test_listening_page(run):
    out = run[0]
    page = Page(out / "report" / "listening.html")
    sliders = [a for tag, a in page.tags if tag == "input" and a.get("type") == "range"]
    for sample_id in selected(out / "report"):
        mine = [a for a in sliders if a["data-sample"] == str(sample_id)]
        assert len(mine) == (len(METHODS) + 1) * 2
        assert {a["data-condition"] for a in mine} == {*METHODS, "reference"}
        assert {a["data-question"] for a in mine} == {"correspondence", "quality"}
        assert all(re.fullmatch(rf"s{sample_id}-[A-D]-(correspondence|quality)", a["id"]) for a in mine)
        assert all((a["min"], a["max"], a["step"]) == ("0", "100", "1") and a["data-clip"] for a in mine)
    conditions = [a["src"] for tag, a in page.tags if tag == "audio" and a["src"].startswith("listening/")]
    assert len(conditions) == len(selected(out / "report")) * (len(METHODS) + 1)
    assert all(re.fullmatch(r"listening/[0-9a-f]{12}\.wav", src) for src in conditions)  # names give nothing away
    per_sample = len(METHODS) + 1
    for k, sample_id in enumerate(selected(out / "report")):  # one hidden reference per sample: the input's copy
        given = (out / "report" / "audio" / f"{sample_id:04d}-input.wav").read_bytes()
        chunk = conditions[k * per_sample:(k + 1) * per_sample]
        assert sum((out / "report" / src).read_bytes() == given for src in chunk) == 1
    text = " ".join(page.text)
    assert "How well does the explanation correspond" in text and "Reference" in text
    assert not any(method in text for method in METHODS)
    assert any(tag == "button" and a.get("id") == "save" for tag, a in page.tags)
    html = (out / "report" / "listening.html").read_text(encoding="utf-8")
    assert '<textarea id="csv-output" readonly>' in html
    assert '"listener", "sample_id", "clip", "condition", "question", "rating"' in html


def test_second_build_keeps_the_media(run):
    out, media = run
    build_report(out, samples=4)
    assert {p: p.stat().st_mtime_ns for p in media} == media


def test_unfinished_run_folder(run, tmp_path):
    for name in ("table.csv", "table.md", "run.json"):
        shutil.copy(run[0] / name, tmp_path / name)
    with pytest.raises(ValueError, match="per_sample.csv"):
        build_report(tmp_path)
