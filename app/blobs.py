"""Where the uploads of background jobs wait until they are indexed (the spool): a folder, or S3-compatible storage.

Keys read `<job id>/<file index>`. `put` returns once the bytes are durable (fsynced, or acknowledged by the object
store); `get` of a key that is gone raises `FileNotFoundError` (an `OSError`: the runner fails that file with
`spool_missing`); `delete` of a missing key is not an error. `folders` lists the job ids that have blobs, with the
time the newest was written, for the retention sweep.

`S3BlobStore` (RAG_BLOB_URL=`s3://bucket/prefix`) keeps them as objects `<prefix>/<job id>/<index>` through boto3,
configured the standard AWS way (credentials, region, `AWS_ENDPOINT_URL` for MinIO and other S3-compatible servers).
Any failure of the storage itself (endpoint unreachable, access denied, bucket missing) is an
`UpstreamUnavailableError` with the reason: an upload answers 503, never 500.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from haystack import logging

from app.errors import UpstreamUnavailableError
from app.extras import extra_required

logger = logging.getLogger(__name__)

S3_DELETE_BATCH = 1000  # DeleteObjects takes at most 1000 keys per request
S3_CONNECT_TIMEOUT_S = 5
S3_READ_TIMEOUT_S = 60
S3_MAX_ATTEMPTS = 3  # one try and two retries (botocore's standard mode: backoff, throttling and 5xx retried)
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled"}


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
        folder, name = split_key(key)
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
        path = self.root / check_folder(folder)
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


def split_key(key: str) -> tuple[str, str]:
    """`<job id>/<index>` -> (job id, index); `ValueError` for anything else (no path may leave its folder)."""
    folder, _, name = key.partition("/")
    check_folder(folder)
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"not a spool key: {key!r}")
    return folder, name


def check_folder(folder: str) -> str:
    """A job id as a folder name; `ValueError` for an empty, nested or relative one (it would name the whole spool)."""
    if not folder or "/" in folder or "\\" in folder or folder in (".", ".."):
        raise ValueError(f"not a spool folder: {folder!r}")
    return folder


def parse_blob_url(url: str) -> tuple[str, str]:
    """`s3://bucket/prefix` -> (bucket, prefix without its surrounding slashes; '' for the bucket's root).

    :raises ValueError: not an `s3://` URL with a bucket, or a prefix with empty or relative segments.
    """
    parts = urlsplit(url.strip())
    bucket = parts.netloc
    prefix = parts.path.strip("/")
    if (
        parts.scheme != "s3"
        or not bucket
        or any(c in bucket for c in "@:/")
        or parts.query
        or parts.fragment
        or (prefix and any(segment in ("", ".", "..") for segment in prefix.split("/")))
    ):
        raise ValueError(
            "RAG_BLOB_URL must read s3://bucket/prefix (the prefix is optional; credentials and the endpoint come "
            f"from the AWS variables, never the URL), not a {parts.scheme or 'schemeless'} URL of that shape"
        )
    return bucket, prefix


class S3BlobStore:
    """Blobs as objects `<prefix>/<job id>/<index>` in an S3 bucket (RAG_BLOB_URL): the spool of a cluster, shared
    by every API replica and worker. `put` returns once the store acknowledged the object (S3 writes are durable and
    read-after-write consistent); there are no folders to sync or remove."""

    list_page_size = 1000  # keys per ListObjectsV2 page (S3's maximum)
    delete_batch = S3_DELETE_BATCH

    def __init__(self, url: str, *, client: Any = None) -> None:
        """`url`: `s3://bucket/prefix`. `client`: a boto3 S3 client (default: one from the standard AWS
        configuration: environment, shared config files, instance role; `AWS_ENDPOINT_URL` for a non-AWS server)."""
        self.bucket, self.prefix = parse_blob_url(url)
        self._base = f"{self.prefix}/" if self.prefix else ""
        if client is None:
            with extra_required("cluster", "RAG_BLOB_URL"):
                import boto3
                from botocore.config import Config

            config = Config(
                connect_timeout=S3_CONNECT_TIMEOUT_S,
                read_timeout=S3_READ_TIMEOUT_S,
                retries={"mode": "standard", "max_attempts": S3_MAX_ATTEMPTS},
            )
            client = boto3.session.Session().client("s3", config=config)
        self.client = client

    @property
    def where(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def endpoint(self) -> str:
        """The endpoint's scheme, host and port (for logs: never a user or password)."""
        parts = urlsplit(str(self.client.meta.endpoint_url))
        return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")

    def _key(self, key: str) -> str:
        folder, name = split_key(key)
        return f"{self._base}{folder}/{name}"

    def check(self) -> None:
        """At start: make sure the bucket exists and these credentials may list it (the retention sweep does). An
        endpoint that cannot be reached is only logged: it may come up after this process (uploads answer 503 until
        then), whereas a missing bucket or refused credentials need an operator.

        :raises UpstreamUnavailableError: the bucket is missing, or access is denied.
        """
        from botocore.exceptions import ConnectionError as EndpointError

        try:
            with self._storage("checking the bucket", missing_is_bucket=True):
                self.client.head_bucket(Bucket=self.bucket)
        except UpstreamUnavailableError as error:
            if not isinstance(error.__cause__, EndpointError):
                raise

    def put(self, key: str, data: bytes) -> None:
        name = self._key(key)
        with self._storage("storing an upload"):
            self.client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def get(self, key: str) -> bytes:
        name = self._key(key)
        try:
            with self._storage("reading an upload"):
                body: bytes = self.client.get_object(Bucket=self.bucket, Key=name)["Body"].read()
        except _MissingKeyError as missing:
            raise FileNotFoundError(errno.ENOENT, f"no such object in {self.where}", key) from missing.__cause__
        return body

    def delete(self, key: str) -> None:
        name = self._key(key)
        try:
            with self._storage("deleting an upload"):
                self.client.delete_object(Bucket=self.bucket, Key=name)
        except _MissingKeyError:  # S3 answers 204 for a missing key; some compatible servers answer 404
            pass

    def folders(self) -> dict[str, float]:
        newest: dict[str, float] = {}
        for folder, _name, size_and_time in self._objects(self._base):
            written = size_and_time[1]
            newest[folder] = max(written, newest.get(folder, 0.0))
        return newest

    def delete_folder(self, folder: str) -> int:
        prefix = f"{self._base}{check_folder(folder)}/"
        objects = [(f"{prefix}{name}", size) for _folder, name, (size, _written) in self._objects(prefix)]
        freed = 0
        for start in range(0, len(objects), self.delete_batch):
            batch = objects[start : start + self.delete_batch]
            with self._storage("deleting a job's uploads"):
                answer = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": key} for key, _ in batch], "Quiet": True}
                )
            errors = answer.get("Errors") or []
            if errors:  # per-key refusals (access denied on some keys, throttling): the sweep tries again next time
                first = errors[0]
                reason = f"{len(errors)} objects were not deleted ({first.get('Code', 'error')})"
                raise self._unavailable("deleting a job's uploads", reason, first.get("Message", ""))
            freed += sum(size for _, size in batch)
        return freed

    def sync_folder(self, folder: str) -> None:
        """Nothing to do: an object is durable once `put` returned."""

    def remove_empty_folder(self, folder: str) -> None:
        """Nothing to do: a prefix with no objects does not exist."""

    def _objects(self, prefix: str) -> Iterator[tuple[str, str, tuple[int, float]]]:
        """(job id, index, (size, written at)) of every object under `prefix` that is a spool key."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.list_page_size}
        )
        listing = iter(pages)
        while True:
            with self._storage("listing the uploads"):  # each page is one request
                page = next(listing, None)
            if page is None:
                return
            for item in page.get("Contents", ()):
                folder, _, name = str(item["Key"])[len(self._base) :].partition("/")
                if folder and name and "/" not in name:
                    yield folder, name, (int(item.get("Size", 0)), item["LastModified"].timestamp())

    @contextmanager
    def _storage(self, action: str, *, missing_is_bucket: bool = False) -> Iterator[None]:
        """Turn boto3's errors into the service's: a missing key is `_MissingKeyError`, anything else an
        `UpstreamUnavailableError` saying what failed and why."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
        from botocore.exceptions import ConnectionError as EndpointError

        try:
            yield
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_KEY and not missing_is_bucket:
                raise _MissingKeyError() from error
            if code in _MISSING_BUCKET or (missing_is_bucket and code in _MISSING_KEY):
                reason = f"the bucket {self.bucket!r} does not exist (create it, or fix RAG_BLOB_URL)"
            elif code in _DENIED:
                reason = f"access denied ({code}): check the AWS credentials and the bucket's policy"
            else:
                message = error.response.get("Error", {}).get("Message", "")
                reason = f"the storage answered {code or 'an error'}" + (f": {message}" if message else "")
            raise self._unavailable(action, reason, error) from error
        except NoCredentialsError as error:
            reason = "no AWS credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE or a role)"
            raise self._unavailable(action, reason, error) from error
        except EndpointError as error:  # refused, timed out, TLS, proxy
            reason = f"the storage endpoint cannot be reached ({type(error).__name__})"
            raise self._unavailable(action, reason, error) from error
        except BotoCoreError as error:  # a read timeout, a broken response...: the message names the endpoint, logged
            raise self._unavailable(action, type(error).__name__, error) from error

    def _unavailable(self, action: str, reason: str, error: object) -> UpstreamUnavailableError:
        """The error an API client sees (the bucket and prefix, never the endpoint); the log has the endpoint."""
        logger.warning(
            "Object storage {where} at {endpoint}: {action} failed: {reason} ({error})",
            where=self.where,
            endpoint=self.endpoint,
            action=action,
            reason=reason,
            error=str(error),
        )
        return UpstreamUnavailableError(f"object storage {self.where} is unavailable: {action} failed: {reason}")


class _MissingKeyError(Exception):
    """The object is not there (raised inside `S3BlobStore`, turned into `FileNotFoundError` or ignored)."""


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
