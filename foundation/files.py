"""Files written so that none is ever half-written, and their digests."""
from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path


class DiskFullError(OSError):
    """A write found its device full (``errno.ENOSPC``); its text names the folder and what was not written."""

    def __str__(self) -> str:
        return self.strerror


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_then_replace(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary name beside ``path`` (``.partial-<pid>-<name>``, same suffix, so
    that writers that go by the suffix pick the format), then move it over ``path`` (atomic): a failure
    leaves an earlier ``path`` as it was, and no partial file behind.

    Raises:
        DiskFullError: the device is full (``errno.ENOSPC``; also when a writer such as ``torch.save`` reports it
            as a RuntimeError): the message names the folder and says that ``path`` was not written.
    """
    partial = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        write(partial)
        os.replace(partial, path)
    except (OSError, RuntimeError) as error:
        if not _device_full(path.parent, error):
            raise
        raise DiskFullError(errno.ENOSPC, f"no space left on the device of {path.parent}: {path.name} was not written "
                                    "(what the folder held before is as it was); free space and run again") from None
    finally:
        partial.unlink(missing_ok=True)


def _device_full(folder: Path, error: Exception) -> bool:
    """Whether ``error`` came from a full device: an ENOSPC, or a writer's error while the folder's device has
    less free space than a small checkpoint needs."""
    if isinstance(error, OSError):
        return error.errno == errno.ENOSPC
    try:
        device = os.statvfs(folder)
    except OSError:
        return False
    return device.f_bavail * device.f_frsize < (1 << 20)
