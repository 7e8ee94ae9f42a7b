"""``run_benchmark.py download esc50|us8k``: fetch a dataset's official archive into its data root.

The archive is downloaded to ``<data root>.download/<archive>.part`` with a progress bar; a partial
file is resumed with an HTTP range request; the complete archive's checksum is compared with the
published one before anything is unpacked; it is unpacked into ``<data root>.unpacking/`` and only
the finished folder is moved to the data root, so an interrupted or failed run never leaves a data
root that looks complete. Nothing in the benchmark downloads by itself: this command is the only way.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm


@dataclass(frozen=True)
class Archive:
    """A dataset's official archive: where it is, its checksum ("sha256:…" or "md5:…", as its
    publisher gives it), and the folder inside it that becomes the data root."""

    url: str
    checksum: str
    folder: str
    note: str = ""


ARCHIVES = {
    "esc50": Archive("https://github.com/karoldvl/ESC-50/archive/master.zip",
                     "sha256:805afc618aff80eff0641d51311647871fead5807da68bb18e43a27db47a79ce", "ESC-50-master",
                     "GitHub builds this archive from the repository's master branch (645,695,005 bytes when its "
                     "SHA-256 was taken); if GitHub rebuilds it differently, check the files and pass --checksum"),
    "us8k": Archive("https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz",
                    "md5:9aa69802bbf37fb986f71ec1483a196e", "UrbanSound8K", "Zenodo publishes the MD5"),
}


class DownloadError(OSError):
    """The archive could not be fetched, or its checksum differs; the message names the URL or file and the fix."""


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(url: str, part: Path) -> None:
    """Download ``url`` to ``part``, continuing a partial file with a range request.

    Raises:
        DownloadError: no connection, an HTTP error, or a transfer cut off (the partial file is kept
            for the next try).
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            resumed = have and response.status == 206
            total = response.length + (have if resumed else 0) if response.length is not None else None
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


def unpack(archive: Path, folder: str, root: Path) -> None:
    """Unpack ``archive`` (zip or tar) into ``<root>.unpacking/`` and move its ``folder`` to ``root``.

    Raises:
        DownloadError: the archive does not hold ``folder``, or a member would land outside the target.
    """
    staging = root.with_name(root.name + ".unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as bundle:
                for name in bundle.namelist():
                    if not (staging / name).resolve().is_relative_to(staging.resolve()):
                        raise DownloadError(f"{archive}: member {name} would land outside {staging}; refused")
                bundle.extractall(staging)
        else:
            with tarfile.open(archive) as bundle:
                bundle.extractall(staging, filter="data")  # refuses members outside the target
        if not (staging / folder).is_dir():
            raise DownloadError(f"{archive} holds no folder {folder}; it is not the expected archive")
        os.replace(staging / folder, root)
    except tarfile.TarError as error:
        raise DownloadError(f"{archive}: cannot unpack it ({error}); delete it and download again") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def download(name: str, root: Path, url: str | None = None, checksum: str | None = None) -> Path:
    """Fetch, check and unpack dataset ``name`` ("esc50" or "us8k") so that ``root`` is its data root.

    Args:
        root: the data root to create (the dataset's default, ``--data-root``, or its environment variable).
        url, checksum: another source of the same archive (a mirror) and its "sha256:…" or "md5:…".
    Returns:
        ``root``.
    Raises:
        DownloadError: offline, HTTP error, checksum mismatch (the archive is deleted), an archive
            without the dataset's folder; FileExistsError: ``root`` already holds something.
    """
    archive = ARCHIVES[name]
    url, checksum = url or archive.url, checksum or archive.checksum
    algorithm, _, expected = checksum.partition(":")
    if algorithm not in ("sha256", "md5") or not expected:
        raise DownloadError(f"--checksum {checksum}: expected sha256:HEX or md5:HEX")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} already exists and is not empty; the dataset may already be there (pass it "
                              "as --data-root), or move it away to download again")
    part = root.with_name(root.name + ".download") / (Path(url.split("?")[0]).name + ".part")
    fetch(url, part)
    got = _digest(part, algorithm)
    if got != expected.lower():
        part.unlink()
        raise DownloadError(f"{url}: the archive's {algorithm} is {got}, expected {expected}; it was deleted. "
                            f"Run again to download it anew. {archive.note}")
    if root.exists():
        root.rmdir()  # empty
    unpack(part, archive.folder, root)
    shutil.rmtree(part.parent)
    return root
