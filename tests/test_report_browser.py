"""The report of a real run opened in headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium): every audio element loads (about 5 s), every image loads, the pages make no
network request, and the listening page's sliders produce a CSV that ``listening-results`` reads."""
import io
import json
import shutil

import pandas as pd
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from benchmark.cli import main
from benchmark.commands.listening_results import COLUMNS
from benchmark.commands.report import build_report
from tests.conftest import ESC50

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    assert main(["--dataset", "esc50", "--data-root", str(ESC50), "--profile", "tiny", "--limit", "2",
                 "--methods", "saliency,lmac,all-ones", "--controls", "none", "--out", str(root / "run"),
                 "--cache-dir", str(root / "cache")]) == 0
    return build_report(root / "run", samples=3).parent


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM and CHROMEDRIVER, ("the browser test needs Debian's chromium and chromium-driver: "
                                       "apt-get install chromium chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


LOCAL = ("file://", "data:", "blob:")  # the page's files, Chrome's own media-control icons, the saved CSV


def requested_urls(driver) -> list[str]:
    """Every URL the page asked for since the last call (Chrome's performance log)."""
    messages = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [m["params"]["request"]["url"] for m in messages if m["method"] == "Network.requestWillBeSent"]


def media_state(driver) -> dict:
    """Load every <audio> (metadata only) and wait for it; report durations and image states."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const audios = Array.from(document.querySelectorAll("audio"));
        const loaded = audios.map(a => new Promise(resolve => {
            if (a.readyState >= 1) return resolve();
            a.addEventListener("loadedmetadata", resolve, {once: true});
            a.addEventListener("error", resolve, {once: true});
            a.preload = "metadata"; a.load();
        }));
        Promise.all(loaded).then(() => done({
            audio: audios.map(a => [a.getAttribute("src"), a.duration, a.error ? a.error.code : 0]),
            images: Array.from(document.images).map(i => [i.getAttribute("src"), i.complete, i.naturalWidth]),
        }));
    """)


@pytest.mark.parametrize("page", ["index.html", "listening.html"])
def test_every_medium_loads_and_nothing_is_fetched_from_the_network(report, browser, page):
    browser.set_script_timeout(60)
    browser.get((report / page).as_uri())
    state = media_state(browser)
    assert state["audio"], "no audio element"
    for src, duration, error in state["audio"]:
        assert error == 0 and abs(duration - 5.0) < 0.05, (src, duration, error)
    if page == "index.html":
        assert state["images"]
    for src, complete, width in state["images"]:
        assert complete and width > 0, src
    urls = requested_urls(browser)
    assert any(url.startswith("file://") for url in urls)
    assert all(url.startswith(LOCAL) for url in urls), [u for u in urls if not u.startswith(LOCAL)]


def test_the_sliders_give_the_csv_and_listening_results_reads_it(report, browser, tmp_path):
    browser.get((report / "listening.html").as_uri())
    sliders = browser.execute_script("""
        return Array.from(document.querySelectorAll("input[type=range][data-question]")).map((s, k) => {
            const d = s.dataset;
            s.value = d.condition === "reference" ? 100 : (7 * k) % 91;
            s.dispatchEvent(new Event("input"));
            return [d.sample, d.clip, d.condition, d.question, s.value, s.nextElementSibling.value];
        });
    """)
    assert all(shown == value for *_, value, shown in sliders)  # each slider shows its value
    browser.find_element("id", "listener").send_keys("tester 1")
    browser.find_element("id", "save").click()
    csv = browser.find_element("id", "csv-output").get_property("value")
    ratings = pd.read_csv(io.StringIO(csv), dtype=str)
    assert list(ratings.columns) == list(COLUMNS)
    expected = pd.DataFrame([["tester 1", *row[:5]] for row in sliders], columns=list(COLUMNS))
    pd.testing.assert_frame_equal(ratings, expected)
    assert {"reference", "saliency", "lmac", "all-ones"} == set(ratings["condition"])
    assert not [u for u in requested_urls(browser) if not u.startswith(LOCAL)]

    saved = tmp_path / "ratings-tester_1.csv"
    saved.write_text(csv)
    assert main(["listening-results", str(saved), "--out", str(tmp_path / "summary")]) == 0
    summary = pd.read_csv(tmp_path / "summary" / "listening.csv")
    mean = summary.set_index(["question", "condition"])["mean"]
    for question in ("correspondence", "quality"):
        assert mean[(question, "reference")] == 100
        values = ratings[(ratings["question"] == question) & (ratings["condition"] == "lmac")]["rating"].astype(int)
        assert mean[(question, "lmac")] == pytest.approx(values.mean())
