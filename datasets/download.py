"""``run_benchmark.py download esc50|us8k``: fetch a dataset's official archive into its data root.

The archive is downloaded (``http://``, ``https://``) or copied (``file://``) to
``<data root>.download/<archive>.part`` with a progress bar; a partial HTTP download is resumed with a
range request; the complete archive's checksum is compared with the published one before anything is
unpacked; it is unpacked into ``<data root>.unpacking/``, its layout is checked (the metadata CSV and
every audio file it lists), and only then is the finished folder moved to the data root, so an
interrupted or failed run never leaves a data root that looks complete. Nothing in the benchmark
downloads by itself: this command is the only way.
"""
from __future__ import annotations

import csv
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

SCHEMES = "http://, https:// or file://"


@dataclass(frozen=True)
class Archive:
    """A dataset's official archive: where it is, its checksum ("sha256:…" or "md5:…", as its
    publisher gives it), the folder inside it that becomes the data root, the metadata CSV in that
    folder and the path of a listed clip (a format string over the CSV's columns)."""

    url: str
    checksum: str
    folder: str
    metadata: str
    clip: str
    note: str = ""


ARCHIVES = {
    "esc50": Archive("https://github.com/karoldvl/ESC-50/archive/master.zip",
                     "sha256:805afc618aff80eff0641d51311647871fead5807da68bb18e43a27db47a79ce", "ESC-50-master",
                     "meta/esc50.csv", "audio/{filename}",
                     "GitHub builds this archive from the repository's master branch (645,695,005 bytes when its "
                     "SHA-256 was taken); if GitHub rebuilds it differently, check the files and pass --checksum"),
    "us8k": Archive("https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz",
                    "md5:9aa69802bbf37fb986f71ec1483a196e", "UrbanSound8K", "metadata/UrbanSound8K.csv",
                    "audio/fold{fold}/{slice_file_name}", "Zenodo publishes the MD5"),
}
FIX = "give --url the official archive or a mirror of it, or leave --url out to fetch the official one"


class DownloadError(OSError):
    """The archive could not be fetched, or its checksum or layout is wrong; the message names the URL or
    file and the fix."""


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def local_path(url: str) -> Path | None:
    """The file that a ``file://`` URL names, None for an ``http(s)://`` URL.

    Raises:
        DownloadError: any other scheme, a bare path, an HTTP URL without a host, or a ``file://`` URL
            of another host; the message names ``--url`` and the accepted schemes.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and parts.netloc:
        return None
    if scheme == "file" and parts.netloc in ("", "localhost") and parts.path:
        return Path(urllib.request.url2pathname(parts.path))
    hint = f" (for a local file: {Path(url).expanduser().resolve().as_uri()})" if not scheme else ""
    raise DownloadError(f"--url {url}: expected an {SCHEMES} URL{hint}; file:// takes an absolute path on "
                        "this machine, e.g. file:///data/master.zip")


def fetch(url: str, part: Path) -> None:
    """Download ``url`` to ``part``, continuing a partial file with a range request; a ``file://`` URL
    is copied.

    Raises:
        DownloadError: an unsupported URL, no such local file, no connection, an HTTP error, or a
            transfer cut off (the partial file is kept for the next try).
    """
    source = local_path(url)
    if source is not None and not source.is_file():
        problem = f"{source} is a folder, not an archive" if source.is_dir() else f"no such file {source}"
        raise DownloadError(f"--url {url}: {problem}; check the path (file:// takes an absolute path, e.g. "
                            "file:///data/master.zip)")
    part.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        try:
            shutil.copyfile(source, part)
        except OSError as error:
            raise DownloadError(f"--url {url}: cannot copy {source} to {part} ({error.strerror})") from None
        return
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            resumed = have and response.status == 206
            length = response.headers.get("Content-Length")
            total = int(length) + (have if resumed else 0) if length is not None else None
            with open(part, "ab" if resumed else "wb") as file, tqdm(
                    total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                    desc=f"download {part.name.removesuffix('.part')}") as progress:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    file.write(chunk)
                    progress.update(len(chunk))
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the partial file is already complete
            return
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}; try again later, or download it by "
                            "hand") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"cannot download {url} ({reason}); check the network connection and run the same "
                            f"command again (it continues {part})") from None
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"the download of {url} stopped at {part.stat().st_size} of {total} bytes; run the same "
                            "command again to continue it")


def _entries(folder: Path) -> str:
    """The names in ``folder`` (folders with a trailing /), the first ten, for a message."""
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(names[:10]) + (f", … ({len(names)} in all)" if len(names) > 10 else "")
    return shown or "nothing"


def check_layout(base: Path, archive: Archive, url: str) -> None:
    """Check that ``base`` (the archive's unpacked folder) holds ``archive.metadata`` and every clip it lists.

    Raises:
        DownloadError: the metadata CSV or ``audio/`` is missing, the CSV is unreadable, lacks a column
            or lists no clip, or a listed clip is absent; the message says what was found and the fix.
    """
    missing = [name for name, there in ((archive.metadata, (base / archive.metadata).is_file()),
                                        ("audio/", (base / "audio").is_dir())) if not there]
    if missing:
        raise DownloadError(f"{url}: the archive's folder {archive.folder}/ holds {_entries(base)} but no "
                            f"{' and no '.join(missing)}; it is not the expected archive: {FIX}")
    csv_name = f"{archive.folder}/{archive.metadata}"
    try:
        with open(base / archive.metadata, newline="", encoding="utf-8") as file:
            listed = [archive.clip.format_map(row) for row in csv.DictReader(file)]
    except KeyError as error:
        raise DownloadError(f"{url}: {csv_name} lacks the column {error}; it is not the expected archive: "
                            f"{FIX}") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise DownloadError(f"{url}: {csv_name} is not a readable CSV ({error}); {FIX}") from None
    absent = [clip for clip in listed if not (base / clip).is_file()]
    if not listed or absent:
        found = f"{len(absent)} of the {len(listed)} clips it lists are absent" if listed else "it lists no clip"
        first = f" (first: {', '.join(absent[:3])})" if absent else ""
        raise DownloadError(f"{url}: {csv_name} is there but {found}{first}; the archive is incomplete: {FIX}")


def unpack(path: Path, archive: Archive, root: Path, url: str) -> None:
    """Unpack ``path`` (zip or tar, downloaded from ``url``) into ``<root>.unpacking/``, check its layout
    and move its ``archive.folder`` to ``root``; the staging folder is always removed.

    Raises:
        DownloadError: not a readable zip or tar, a member would land outside the target, no
            ``archive.folder``, or a layout ``check_layout`` refuses.
    """
    staging = root.with_name(root.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as bundle:
                for name in bundle.namelist():
                    if not (staging / name).resolve().is_relative_to(staging.resolve()):
                        raise DownloadError(f"{url}: member {name} would land outside {staging}; refused")
                bundle.extractall(staging)
        else:
            with tarfile.open(path) as bundle:
                bundle.extractall(staging, filter="data")  # refuses members outside the target
        if not (staging / archive.folder).is_dir():
            raise DownloadError(f"{url}: the archive holds no folder {archive.folder} (its top level: "
                                f"{_entries(staging)}); it is not the expected archive: {FIX}")
        check_layout(staging / archive.folder, archive, url)
        os.replace(staging / archive.folder, root)
    except (tarfile.TarError, zipfile.BadZipFile) as error:
        reason = " ".join(str(error).split())  # tarfile's reasons span several lines
        raise DownloadError(f"{url}: cannot unpack it ({reason}); it is not a complete zip or tar archive: "
                            f"{FIX}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(name: str, root: Path, url: str | None = None, checksum: str | None = None) -> Path:
    """Fetch, check and unpack dataset ``name`` ("esc50" or "us8k") so that ``root`` is its data root.

    Args:
        root: the data root to create (the dataset's default, ``--data-root``, or its environment variable).
        url, checksum: another source of the same archive (an http://, https:// or file:// URL) and its
            "sha256:…" or "md5:…".
    Returns:
        ``root``.
    Raises:
        DownloadError: an unsupported URL (before anything is fetched or made), no such local file,
            offline, HTTP error, checksum mismatch (the archive is deleted), an archive without the
            dataset's folder, metadata or listed clips (the archive is deleted, no data root is made);
            FileExistsError: ``root`` already holds something.
    """
    archive = ARCHIVES[name]
    url, checksum = url or archive.url, checksum or archive.checksum
    local_path(url)  # refuses an unsupported URL before anything is made
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise DownloadError(f"--checksum {checksum}: expected sha256:HEX or md5:HEX")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} already exists and is not empty; the dataset may already be there (pass it "
                              "as --data-root), or move it away to download again")
    file_name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name or "archive"
    part = root.with_name(root.name + ".download") / (file_name + ".part")
    fetch(url, part)
    got = _digest(part, algorithm)
    if got != expected.lower():
        part.unlink()
        raise DownloadError(f"{url}: the archive's {algorithm} is {got}, expected {expected}; it was deleted. "
                            f"Run again to download it anew. {archive.note}")
    if root.exists():
        root.rmdir()  # empty
    try:
        unpack(part, archive, root, url)
    except DownloadError:
        shutil.rmtree(part.parent)  # a complete archive with the wrong content: no use keeping it
        raise
    shutil.rmtree(part.parent)
    return root
