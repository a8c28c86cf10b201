"""What a source may name and how each kind is listed and read: folders inside the allowed roots only (no escape by
`..` or symlinks), globs, URLs (http/https, public addresses unless allowed, conditional GET, redirects checked hop by
hop) against a local web server, and S3 prefixes against a real S3-protocol server."""

from __future__ import annotations

import os

import pytest

from app.errors import InvalidInputError, UpstreamUnavailableError
from app.sync.listing import SyncLimits, check_location, check_url, lister, selected
from app.sync.models import Listed, Source, SourceEntry, SourceKind
from app.testing.sync import PageServer


def source(kind: SourceKind, location, include=(), exclude=()) -> Source:
    return Source(
        id="src_" + "0" * 24,
        collection="c",
        kind=kind,
        location=location,
        include=list(include),
        exclude=list(exclude),
        interval_seconds=None,
        access=None,
        enabled=True,
        created_at=0.0,
        updated_at=0.0,
    )


@pytest.mark.parametrize(
    ("key", "include", "exclude", "chosen"),
    [
        ("a/b.pdf", [], [], True),
        ("a/b.pdf", ["*.pdf"], [], True),  # a glob without / matches the last part
        ("a/b.txt", ["*.pdf"], [], False),
        ("a/b.pdf", ["a/**"], [], True),
        ("b.pdf", ["**/*.pdf"], [], True),  # ** also matches no folder
        ("drafts/x.pdf", ["*.pdf"], ["drafts/*"], False),
        ("x.PDF", ["*.pdf"], [], False),  # case-sensitive, as the keys are
    ],
)
def test_globs(key, include, exclude, chosen):
    assert selected(key, include, exclude) is chosen


def test_folder_locations_outside_the_roots_are_refused_as_a_security_finding(tmp_path):
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (root / "link").symlink_to(tmp_path / "secret")
    limits = SyncLimits(roots=(root,))
    assert check_location(SourceKind.FOLDER, str(root / "docs"), limits) == str((root / "docs").resolve())
    assert check_location(SourceKind.FOLDER, "docs", limits) == str((root / "docs").resolve())  # relative to the root
    for escape in (str(tmp_path / "secret"), str(root / ".." / "secret"), "../secret", str(root / "link"), "/etc"):
        with pytest.raises(InvalidInputError, match="outside the allowed roots"):
            check_location(SourceKind.FOLDER, escape, limits)
    with pytest.raises(InvalidInputError, match="disabled"):
        check_location(SourceKind.FOLDER, str(root / "docs"), SyncLimits(roots=()))
    with pytest.raises(InvalidInputError, match="does not exist"):
        check_location(SourceKind.FOLDER, str(root / "nope"), limits)


def test_the_walk_does_not_follow_symlinks_out_of_the_source_folder(tmp_path):
    root = tmp_path / "root"
    docs = root / "docs"
    (docs / "sub").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "passwords.txt").write_text("hunter2")
    (docs / "a.txt").write_text("a")
    (docs / "sub" / "b.txt").write_text("b")
    (docs / "outside").symlink_to(tmp_path / "secret")  # a folder link out: not walked
    (docs / "leak.txt").symlink_to(tmp_path / "secret" / "passwords.txt")  # a file link out: not read
    (docs / "inside.txt").symlink_to(docs / "a.txt")  # a link within the folder: read
    folder = lister(source(SourceKind.FOLDER, str(docs)), SyncLimits(roots=(root,)))
    keys = sorted(e.key for e in folder.entries())
    assert keys == ["a.txt", "inside.txt", "sub/b.txt"]
    assert folder.read(Listed("inside.txt"), None).data == b"a"  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError):
        folder.read(Listed("leak.txt"), None)
    with pytest.raises(InvalidInputError):
        folder.read(Listed("../../secret/passwords.txt"), None)


def test_a_folder_with_too_many_files_is_refused_not_cut(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for n in range(4):
        (docs / f"{n}.txt").write_text(str(n))
    folder = lister(source(SourceKind.FOLDER, str(docs)), SyncLimits(roots=(tmp_path,), max_entries=3))
    with pytest.raises(InvalidInputError, match="more than 3"):
        list(folder.entries())


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/a",
        "gopher://127.0.0.1/",
        "http://",
        "http://user:pw@example.com/",
        "http://127.0.0.1:8000/admin",
        "http://[::1]/",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.0.0.1/",
        "http://0.0.0.0/",
    ],
)
def test_urls_that_are_not_public_http_are_refused_as_a_security_finding(url):
    with pytest.raises(InvalidInputError):
        check_location(SourceKind.URLS, [url], SyncLimits())


def test_a_host_name_resolving_to_a_private_address_is_refused_when_read():
    with pytest.raises(InvalidInputError, match="not public"):
        check_url("http://localhost/", SyncLimits())
    check_url("http://localhost/", SyncLimits(allow_private_urls=True))


def test_urls_are_read_with_a_conditional_get_and_redirects_to_private_addresses_are_refused():
    with PageServer() as pages:
        pages.pages["/a.txt"] = b"alpha"
        limits = SyncLimits(allow_private_urls=True)
        urls = lister(source(SourceKind.URLS, [f"{pages.url}/a.txt"]), limits)
        (entry,) = list(urls.entries())
        fetched = urls.read(entry, None)
        assert fetched is not None and fetched.data == b"alpha" and fetched.etag
        previous = SourceEntry(entry.key, fetched.etag, None, 5, "h", None, 1, "indexed", None)
        assert urls.read(entry, previous) is None  # 304: not downloaded again
        assert [status for _, _, status in pages.hits] == [200, 304]
        pages.pages["/a.txt"] = b"alpha two"
        assert urls.read(entry, previous).data == b"alpha two"  # type: ignore[union-attr]
        pages.pages["/b.txt"] = b"bravo"
        pages.redirects["/r"] = "/b.txt"
        assert urls.read(Listed(f"{pages.url}/r"), None).data == b"bravo"  # type: ignore[union-attr]
        with pytest.raises(UpstreamUnavailableError, match="404"):
            urls.read(Listed(f"{pages.url}/missing"), None)
        # a public-only deployment: the loopback server is refused before any request is made
        hits = len(pages.hits)
        with pytest.raises(InvalidInputError):
            lister(source(SourceKind.URLS, [f"{pages.url}/a.txt"]), SyncLimits()).read(entry, None)
        assert len(pages.hits) == hits


def test_a_redirect_is_checked_hop_by_hop(monkeypatch):
    with PageServer() as pages:
        pages.redirects["/r"] = "http://169.254.169.254/latest/meta-data/"
        limits = SyncLimits(allow_private_urls=False)
        from app.sync import listing

        real = listing.check_url
        # the first hop (the test server on loopback) is let through; the redirect's target is checked for real
        monkeypatch.setattr(
            listing, "check_url", lambda url, lim, resolve=True: None if pages.url in url else real(url, lim)
        )
        urls = lister(source(SourceKind.URLS, [f"{pages.url}/r"]), limits)
        with pytest.raises(InvalidInputError):
            urls.read(Listed(f"{pages.url}/r"), None)


def test_s3_sources_need_an_allowed_bucket():
    with pytest.raises(InvalidInputError, match="RAG_SYNC_S3_BUCKETS"):
        check_location(SourceKind.S3, "s3://other/prefix", SyncLimits(s3_buckets=frozenset({"docs"})))
    assert check_location(SourceKind.S3, "s3://docs/team/", SyncLimits(s3_buckets=frozenset({"docs"}))) == (
        "s3://docs/team"
    )
    with pytest.raises(InvalidInputError):
        check_location(SourceKind.S3, "s3://docs/../x", SyncLimits(s3_buckets=frozenset({"docs"})))


def test_an_s3_prefix_is_listed_with_etags_and_read(s3_server):
    client = s3_server.client
    for key, body in {
        "team/a.txt": b"alpha",
        "team/sub/b.md": b"bravo",
        "team/c.bin": b"x",
        "other/d.txt": b"d",
    }.items():
        client.put_object(Bucket=s3_server.bucket, Key=key, Body=body)
    limits = SyncLimits(s3_buckets=frozenset({s3_server.bucket}))
    bucket = lister(source(SourceKind.S3, f"s3://{s3_server.bucket}/team", exclude=["*.bin"]), limits)
    entries = {e.key: e for e in bucket.entries()}
    assert sorted(entries) == ["a.txt", "sub/b.md"]
    assert entries["a.txt"].etag and entries["a.txt"].size == 5 and entries["a.txt"].mtime
    assert bucket.read(entries["sub/b.md"], None).data == b"bravo"  # type: ignore[union-attr]
    with pytest.raises(FileNotFoundError):  # deleted since it was listed: that entry fails, the run goes on
        bucket.read(Listed("gone.txt", etag="x", size=1), None)
    missing = lister(
        source(SourceKind.S3, "s3://missing-bucket/x"), SyncLimits(s3_buckets=frozenset({"missing-bucket"}))
    )
    with pytest.raises(UpstreamUnavailableError):
        list(missing.entries())


def test_mtime_metadata_is_the_files(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("alpha")
    os.utime(docs / "a.txt", (1234, 1234))
    (entry,) = list(lister(source(SourceKind.FOLDER, str(docs)), SyncLimits(roots=(tmp_path,))).entries())
    assert (entry.mtime, entry.size) == (1234, 5)
