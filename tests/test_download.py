"""``run_benchmark.py download`` against a local HTTP server on 127.0.0.1 that serves a small ESC-50
archive the test builds from real clips: the real download code runs, nothing leaves the machine."""
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
