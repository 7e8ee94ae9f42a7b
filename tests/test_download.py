"""``run_benchmark.py download`` against a local HTTP server on 127.0.0.1 (or a ``file://`` URL) that serves
a small ESC-50 archive the test builds from real clips: the real download code runs, nothing leaves the machine."""
import functools
import hashlib
import http.server
import shutil
import threading
import zipfile
from pathlib import Path

import pytest

from benchmark.cli import main
from datasets import esc50
from tests.conftest import ESC50

CLIPS = ["4-102844-A-49.wav", "4-102871-A-42.wav", "4-107117-A-33.wav"]


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files of its folder, honouring ``Range: bytes=N-`` (206), and logs each request's range."""

    ranges: list = []

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.ranges.append(start)
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture()
def server(tmp_path):
    """(base URL, served folder) of a server on 127.0.0.1 holding master.zip: ESC-50-master/ with
    meta/esc50.csv (three rows of the real CSV) and those three real clips."""
    served = tmp_path / "served"
    served.mkdir()
    lines = (ESC50 / "meta" / "esc50.csv").read_text().splitlines()
    rows = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in CLIPS]
    with zipfile.ZipFile(served / "master.zip", "w") as bundle:
        bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(rows) + "\n")
        for clip in CLIPS:
            bundle.write(ESC50 / "audio" / clip, f"ESC-50-master/audio/{clip}")
    RangeHandler.ranges = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    httpd.shutdown()


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_checks_unpacks_and_prints_the_next_command(server, tmp_path, capsys):
    url, served = server
    root = tmp_path / "data" / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/master.zip",
                 "--checksum", sha256(served / "master.zip")]) == 0
    meta = esc50.load_metadata(root)  # the loader reads what was unpacked
    assert sorted(meta["filename"]) == sorted(CLIPS)
    assert (root / "audio" / CLIPS[0]).read_bytes() == (ESC50 / "audio" / CLIPS[0]).read_bytes()
    assert f"--data-root {root}" in capsys.readouterr().out
    assert sorted(p.name for p in root.parent.iterdir()) == ["esc50"]  # no partial or staging folder left


def test_a_partial_download_is_resumed_with_a_range_request(server, tmp_path):
    url, served = server
    root = tmp_path / "esc50"
    archive = (served / "master.zip").read_bytes()
    part = tmp_path / "esc50.download" / "master.zip.part"
    part.parent.mkdir()
    part.write_bytes(archive[: len(archive) // 3])  # an earlier download cut off
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/master.zip",
                 "--checksum", sha256(served / "master.zip")]) == 0
    assert RangeHandler.ranges == [len(archive) // 3]
    assert sorted(p.name for p in (root / "audio").iterdir()) == sorted(CLIPS)


def test_a_wrong_checksum_is_refused_and_nothing_is_left_as_if_complete(server, tmp_path, capsys):
    url, _ = server
    root = tmp_path / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/master.zip",
                 "--checksum", "sha256:" + "0" * 64]) == 2
    err = capsys.readouterr().err
    assert "expected 0000" in err and "deleted" in err and "Traceback" not in err
    assert not root.exists() and not list((tmp_path / "esc50.download").iterdir())


def test_offline_is_a_clear_error(tmp_path, capsys):
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    port = closed.server_address[1]
    closed.server_close()  # nothing listens there now
    root = tmp_path / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"http://127.0.0.1:{port}/master.zip"]) == 2
    err = capsys.readouterr().err
    assert "cannot download" in err and "run the same command again" in err and not root.exists()


def test_an_archive_without_the_dataset_folder_is_not_unpacked(server, tmp_path, capsys):
    url, served = server
    with zipfile.ZipFile(served / "other.zip", "w") as bundle:
        bundle.writestr("something/else.txt", "x")
    root = tmp_path / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/other.zip",
                 "--checksum", sha256(served / "other.zip")]) == 2
    assert "holds no folder ESC-50-master" in capsys.readouterr().err
    assert not root.exists() and not (tmp_path / "esc50.unpacking").exists()
    shutil.rmtree(tmp_path / "esc50.download", ignore_errors=True)


def esc50_zip(path: Path, listed: list[str], held: list[str], extra: dict[str, str] | None = None) -> Path:
    """A zip at ``path`` with ESC-50-master/: meta/esc50.csv with the real rows of ``listed`` (none: no CSV),
    the real clips ``held`` under audio/ (none: no audio/) and ``extra`` files (name: text)."""
    lines = (ESC50 / "meta" / "esc50.csv").read_text().splitlines()
    with zipfile.ZipFile(path, "w") as bundle:
        if listed:
            rows = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in listed]
            bundle.writestr("ESC-50-master/meta/esc50.csv", "\n".join(rows) + "\n")
        for clip in held:
            bundle.write(ESC50 / "audio" / clip, f"ESC-50-master/audio/{clip}")
        for name, text in (extra or {}).items():
            bundle.writestr(f"ESC-50-master/{name}", text)
    return path


def test_an_archive_without_meta_and_audio_is_refused_and_leaves_no_data_root(server, tmp_path, capsys):
    url, served = server
    archive = esc50_zip(served / "bare.zip", [], [], {"README.md": "not the dataset", "LICENSE": "x"})
    root = tmp_path / "data" / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/bare.zip",
                 "--checksum", sha256(archive)]) == 2
    err = capsys.readouterr().err
    line = err.splitlines()[-1]  # after the progress bar: the one-line message
    assert line.startswith("error: ") and "Traceback" not in err
    assert "ESC-50-master/ holds LICENSE, README.md but no meta/esc50.csv and no audio/" in line
    assert "give --url the official archive" in line
    assert list((tmp_path / "data").iterdir()) == []  # no data root, no staging folder, no archive left


def test_an_archive_whose_csv_lists_a_clip_it_lacks_is_refused(server, tmp_path, capsys):
    url, served = server
    archive = esc50_zip(served / "gap.zip", CLIPS, CLIPS[:2])
    root = tmp_path / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", f"{url}/gap.zip",
                 "--checksum", sha256(archive)]) == 2
    err = capsys.readouterr().err
    assert f"1 of the 3 clips it lists are absent (first: audio/{CLIPS[2]})" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]


def test_a_file_url_of_a_valid_archive_is_copied_checked_and_unpacked(server, tmp_path, capsys):
    _, served = server
    root = tmp_path / "esc50"
    assert main(["download", "esc50", "--data-root", str(root), "--url", (served / "master.zip").as_uri(),
                 "--checksum", sha256(served / "master.zip")]) == 0
    assert sorted(esc50.load_metadata(root)["filename"]) == sorted(CLIPS)
    assert (served / "master.zip").is_file() and RangeHandler.ranges == []  # read in place, not over HTTP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["esc50", "served"]


def test_a_file_url_of_a_missing_file_names_it(tmp_path, capsys):
    missing = tmp_path / "nowhere" / "master.zip"
    assert main(["download", "esc50", "--data-root", str(tmp_path / "esc50"), "--url", missing.as_uri()]) == 2
    err = capsys.readouterr().err
    assert f"no such file {missing}" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:{port}/master.zip", "data:application/zip;base64,UEsFBg==",
                                 "{served}/master.zip"])
def test_a_url_of_another_scheme_is_refused_before_any_transfer(url, server, tmp_path, capsys):
    _, served = server
    closed = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    closed.server_close()  # were the URL tried, the connection would fail at once, not hang
    url = url.format(port=closed.server_address[1], served=served)
    assert main(["download", "esc50", "--data-root", str(tmp_path / "esc50"), "--url", url]) == 2
    err = capsys.readouterr().err
    assert f"--url {url}: expected an http://, https:// or file:// URL" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1 and RangeHandler.ranges == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["served"]  # no .download folder
