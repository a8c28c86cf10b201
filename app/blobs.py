"""Where the uploads of background jobs wait until they are indexed (the spool): a folder, or S3-compatible storage.

Keys read `<job id>/<file index>`. `put` returns once the bytes are durable (fsynced, or acknowledged by the object
store); `get` of a key that is gone raises `FileNotFoundError` (an `OSError`: the runner fails that file with
`spool_missing`); `delete` of a missing key is not an error. `folders` lists the job ids that have blobs, with the
time the newest was written, for the retention sweep.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """The spool's storage (`LocalBlobStore`; `S3BlobStore` with RAG_BLOB_URL)."""

    @property
    def where(self) -> str:
        """The location, for messages (no credentials)."""
        ...

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def delete(self, key: str) -> None: ...

    def folders(self) -> dict[str, float]:
        """The job ids with blobs, each with the time (epoch seconds) its newest blob was written."""
        ...

    def delete_folder(self, folder: str) -> int:
        """Remove every blob of a job id; the bytes freed."""
        ...

    def sync_folder(self, folder: str) -> None:
        """Make the job's new blobs durable as a set (a folder's entry on disk); nothing to do in an object store."""
        ...

    def remove_empty_folder(self, folder: str) -> None:
        """Drop a job's folder once nothing is left in it; nothing to do in an object store."""
        ...


class LocalBlobStore:
    """Blobs as files under `root` (`<root>/<job id>/<index>`): the single-host default (`RAG_DATA_DIR/jobs`)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def where(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        folder, _, name = key.partition("/")
        if not folder or not name or "/" in name or folder in (".", "..") or name in (".", ".."):
            raise ValueError(f"not a spool key: {key!r}")
        return self.root / folder / name

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def folders(self) -> dict[str, float]:
        if not self.root.is_dir():
            return {}
        return {path.name: _mtime(path) for path in self.root.iterdir() if path.is_dir()}

    def delete_folder(self, folder: str) -> int:
        path = self.root / folder
        freed = _size(path)
        shutil.rmtree(path, ignore_errors=True)
        return freed

    def sync_folder(self, folder: str) -> None:
        path = self.root / folder
        if not path.is_dir():
            return
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def remove_empty_folder(self, folder: str) -> None:
        """Drop a job's folder once nothing is left in it (a finished job without failed files)."""
        try:
            (self.root / folder).rmdir()
        except OSError:
            pass


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        try:
            total += path.stat().st_size if path.is_file() else 0
        except OSError:
            continue
    return total
