"""Listing a source's entries and reading one: a folder, an S3 prefix, or a list of URLs; and the limits on what a
source may name.

A server that reads whatever path or address a caller names is a hole, so every location is checked when the source
is registered and again when it is read:

- folder: must resolve (symlinks included) inside one of the allowed roots (RAG_SYNC_ROOTS, default
  `RAG_DATA_DIR/sources`); the walk follows no symlinked folder, and a symlinked file is read only when it resolves
  inside the source's own folder.
- s3: the bucket must be one of RAG_SYNC_S3_BUCKETS (none by default: the server's credentials may reach buckets a
  caller has no business reading); read through the same boto3 client configuration as the cluster's object store.
- urls: `http`/`https` only; every address the host name resolves to must be a public one (no loopback, private,
  link-local, multicast or reserved address) unless RAG_SYNC_ALLOW_PRIVATE_URLS is on; redirects are followed by hand
  (at most 5) and each hop is checked the same way.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol
from urllib.parse import urljoin, urlsplit

import httpx

from app.errors import InvalidInputError, PayloadTooLargeError, UpstreamUnavailableError
from app.sync.models import Fetched, Listed, Source, SourceEntry, SourceKind

MAX_REDIRECTS = 5
URL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class SyncLimits:
    """What sources may name and read (from the settings)."""

    roots: tuple[Path, ...] = ()
    s3_buckets: frozenset[str] = frozenset()
    allow_private_urls: bool = False
    max_entries: int = 10_000
    max_file_bytes: int = 50 * 1024 * 1024
    url_timeout_s: float = URL_TIMEOUT_S
    s3_client: Any = field(default=None, compare=False)  # a boto3 S3 client (tests); default: the standard one


class Lister(Protocol):
    """A source's entries and their contents."""

    def entries(self) -> Iterator[Listed]:
        """Every entry the globs select (at most `max_entries`: more is an error, not a silent cut)."""
        ...

    def read(self, listed: Listed, previous: SourceEntry | None) -> Fetched | None:
        """The entry's content; None when the source says it has not changed since `previous` (a conditional GET)."""
        ...


def selected(key: str, include: list[str], exclude: list[str]) -> bool:
    """True when `key` (a relative path, object key or URL path) matches an include glob (none: every key) and no
    exclude glob. A glob matches the whole key (`*.pdf`, `docs/**`, `**/*.md`) or, when it has no `/`, the key's last
    part (`*.pdf` selects `a/b.pdf`)."""

    def matches(glob: str) -> bool:
        if fnmatch.fnmatchcase(key, glob):
            return True
        if "/" not in glob:
            return fnmatch.fnmatchcase(PurePosixPath(key).name, glob)
        if glob.startswith("**/") and fnmatch.fnmatchcase(key, glob[3:]):
            return True
        return False

    return (not include or any(matches(g) for g in include)) and not any(matches(g) for g in exclude)


# -- checking a location


def check_location(kind: SourceKind, location: str | list[str], limits: SyncLimits) -> str | list[str]:
    """The location, normalised, or `InvalidInputError` saying why it is refused."""
    if kind == SourceKind.FOLDER:
        if not isinstance(location, str):
            raise InvalidInputError("a folder source's location is one path")
        return str(folder_root(location, limits))
    if kind == SourceKind.S3:
        if not isinstance(location, str):
            raise InvalidInputError("an s3 source's location is one s3://bucket/prefix URL")
        bucket, prefix = _s3_location(location, limits)
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    urls = [location] if isinstance(location, str) else list(location)
    if not urls:
        raise InvalidInputError("a urls source needs at least one URL")
    if len(urls) > limits.max_entries:
        raise InvalidInputError(f"a urls source holds at most {limits.max_entries} URLs (RAG_SYNC_MAX_ENTRIES)")
    for url in urls:
        check_url(url, limits, resolve=False)
    return list(dict.fromkeys(urls))


def folder_root(location: str, limits: SyncLimits) -> Path:
    """The folder, resolved, when it lies inside an allowed root and exists."""
    if not limits.roots:
        raise InvalidInputError("folder sources are disabled (RAG_SYNC_ROOTS is empty)")
    if "\x00" in location:
        raise InvalidInputError("the folder path holds a NUL character")
    path = Path(location)
    if not path.is_absolute():  # relative to the first root
        path = limits.roots[0] / path
    try:
        resolved = path.resolve()
        inside = any(resolved == root.resolve() or resolved.is_relative_to(root.resolve()) for root in limits.roots)
        exists = inside and resolved.is_dir()
    except (OSError, ValueError) as error:  # a name too long, a loop of links, an unencodable name
        raise InvalidInputError(f"the folder cannot be resolved ({type(error).__name__})") from error
    if not inside:
        raise InvalidInputError("the folder is outside the allowed roots (RAG_SYNC_ROOTS)")
    if not exists:
        raise InvalidInputError("the folder does not exist")
    return resolved


def _s3_location(location: str, limits: SyncLimits) -> tuple[str, str]:
    from app.blobs import parse_blob_url

    try:
        bucket, prefix = parse_blob_url(location)
    except ValueError as error:
        raise InvalidInputError(f"not an s3://bucket/prefix URL: {error}") from error
    if bucket not in limits.s3_buckets:
        raise InvalidInputError("the bucket is not one of the allowed buckets (RAG_SYNC_S3_BUCKETS)")
    return bucket, prefix


def check_url(url: str, limits: SyncLimits, *, resolve: bool = True) -> None:
    """`InvalidInputError` unless `url` is http(s) with a host; with `resolve`, also unless every address of the host
    is public (or RAG_SYNC_ALLOW_PRIVATE_URLS)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidInputError(f"not a URL: {error}") from error
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInputError("only http and https URLs with a host can be synced")
    if parts.username or parts.password:
        raise InvalidInputError("a URL with credentials cannot be synced")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise InvalidInputError("the URL holds spaces or control characters")
    host = parts.hostname
    literal = _address(host)
    if literal is not None and not limits.allow_private_urls and not literal.is_global:
        raise InvalidInputError("the URL's address is not a public one (RAG_SYNC_ALLOW_PRIVATE_URLS)")
    if not resolve or limits.allow_private_urls or literal is not None:
        return
    try:
        infos = socket.getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise UpstreamUnavailableError(f"the host {host!r} cannot be resolved") from error
    for info in infos:
        address = _address(str(info[4][0]))
        if address is None or not address.is_global:
            raise InvalidInputError("the URL's host resolves to an address that is not public")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


# -- the listers


class FolderLister:
    """A folder's files (`os.walk`, symlinked folders not followed), keyed by their path relative to the folder."""

    def __init__(self, source: Source, limits: SyncLimits) -> None:
        assert isinstance(source.location, str)
        self.root = folder_root(source.location, limits)
        self.source, self.limits = source, limits

    def entries(self) -> Iterator[Listed]:
        count = 0
        for directory, folders, files in os.walk(self.root, followlinks=False):
            folders.sort()
            for name in sorted(files):
                path = Path(directory) / name
                key = path.relative_to(self.root).as_posix()
                if not selected(key, self.source.include, self.source.exclude):
                    continue
                try:
                    if path.is_symlink() and not path.resolve().is_relative_to(self.root):
                        continue  # a link out of the source's folder is never read
                    stat = path.stat()
                except OSError:
                    continue  # gone or dangling since the walk saw it
                if not path.is_file():
                    continue
                count += 1
                if count > self.limits.max_entries:
                    raise InvalidInputError(f"the folder holds more than {self.limits.max_entries} files to sync")
                yield Listed(key=key, mtime=stat.st_mtime, size=stat.st_size)

    def read(self, listed: Listed, previous: SourceEntry | None) -> Fetched | None:
        path = (self.root / listed.key).resolve()
        if not path.is_relative_to(self.root):
            raise InvalidInputError("the file resolves outside the source's folder")
        if path.stat().st_size > self.limits.max_file_bytes:
            raise PayloadTooLargeError(f"the file is larger than {self.limits.max_file_bytes} bytes")
        data = path.read_bytes()
        return Fetched(data=data, mtime=listed.mtime)


class S3Lister:
    """The objects under an S3 prefix (`list_objects_v2`: key, ETag, size, LastModified), keyed by their key below
    the prefix."""

    def __init__(self, source: Source, limits: SyncLimits) -> None:
        assert isinstance(source.location, str)
        self.bucket, self.prefix = _s3_location(source.location, limits)
        self.base = f"{self.prefix}/" if self.prefix else ""
        self.source, self.limits = source, limits
        if limits.s3_client is not None:
            self.client = limits.s3_client
        else:
            from app.blobs import S3BlobStore

            self.client = S3BlobStore(source.location).client  # the cluster's client configuration

    def entries(self) -> Iterator[Listed]:
        count = 0
        with self._storage("listing"):
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.base)
            for page in pages:
                for item in page.get("Contents", ()):
                    key = str(item["Key"])[len(self.base) :]
                    if not key or key.endswith("/") or not selected(key, self.source.include, self.source.exclude):
                        continue
                    count += 1
                    if count > self.limits.max_entries:
                        raise InvalidInputError(f"the prefix holds more than {self.limits.max_entries} objects to sync")
                    modified = item.get("LastModified")
                    yield Listed(
                        key=key,
                        etag=str(item.get("ETag", "")).strip('"') or None,
                        mtime=modified.timestamp() if modified is not None else None,
                        size=int(item.get("Size", 0)),
                    )

    def read(self, listed: Listed, previous: SourceEntry | None) -> Fetched | None:
        if (listed.size or 0) > self.limits.max_file_bytes:
            raise PayloadTooLargeError(f"the object is larger than {self.limits.max_file_bytes} bytes")
        from app.blobs import _MissingKeyError

        try:
            with self._storage("reading an object"):
                answer = self.client.get_object(Bucket=self.bucket, Key=self.base + listed.key)
                data = answer["Body"].read()
        except _MissingKeyError as error:  # deleted since it was listed: the next run removes it
            raise FileNotFoundError(2, "the object is gone", listed.key) from error
        return Fetched(
            data=data,
            etag=str(answer.get("ETag", "")).strip('"') or listed.etag,
            mtime=listed.mtime,
            content_type=answer.get("ContentType"),
        )

    def _storage(self, action: str) -> Any:
        from app.blobs import S3BlobStore

        where = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return S3BlobStore(where, client=self.client)._storage(f"{action} in {where}")


class UrlLister:
    """A list of URLs, each keyed by itself; read with a conditional GET (If-None-Match / If-Modified-Since from the
    last read), so an unchanged page is not downloaded again."""

    def __init__(self, source: Source, limits: SyncLimits, *, transport: httpx.BaseTransport | None = None) -> None:
        self.urls = [source.location] if isinstance(source.location, str) else list(source.location)
        self.source, self.limits = source, limits
        self.transport = transport

    def entries(self) -> Iterator[Listed]:
        for url in self.urls:
            if selected(urlsplit(url).path.lstrip("/") or "/", self.source.include, self.source.exclude):
                yield Listed(key=url)

    def read(self, listed: Listed, previous: SourceEntry | None) -> Fetched | None:
        headers: dict[str, str] = {}
        if previous is not None and previous.etag:
            headers["If-None-Match"] = previous.etag
        elif previous is not None and previous.mtime is not None:
            headers["If-Modified-Since"] = formatdate(previous.mtime, usegmt=True)
        url = listed.key
        with httpx.Client(timeout=self.limits.url_timeout_s, follow_redirects=False, transport=self.transport) as http:
            for _hop in range(MAX_REDIRECTS + 1):
                check_url(url, self.limits)
                try:
                    with http.stream("GET", url, headers=headers) as answer:
                        if answer.is_redirect and "location" in answer.headers:
                            url = urljoin(url, answer.headers["location"])
                            continue
                        if answer.status_code == 304:
                            return None
                        if answer.status_code != 200:
                            raise UpstreamUnavailableError(f"the URL answered HTTP {answer.status_code}")
                        data = bytearray()
                        for chunk in answer.iter_bytes():
                            data.extend(chunk)
                            if len(data) > self.limits.max_file_bytes:
                                limit = self.limits.max_file_bytes
                                raise PayloadTooLargeError(f"the page is larger than {limit} bytes")
                        return Fetched(
                            data=bytes(data),
                            etag=answer.headers.get("etag"),
                            mtime=_http_date(answer.headers.get("last-modified")),
                            content_type=answer.headers.get("content-type", "").split(";")[0].strip() or None,
                        )
                except httpx.HTTPError as error:
                    raise UpstreamUnavailableError(f"the URL cannot be read ({type(error).__name__})") from error
        raise UpstreamUnavailableError(f"more than {MAX_REDIRECTS} redirects")


def _http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def lister(source: Source, limits: SyncLimits) -> Lister:
    """The lister of a source's kind."""
    if source.kind == SourceKind.FOLDER:
        return FolderLister(source, limits)
    if source.kind == SourceKind.S3:
        return S3Lister(source, limits)
    return UrlLister(source, limits)
