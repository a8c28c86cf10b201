"""Refusals at start: settings that would lose data or split state when several hosts share a deployment.

`check_deployment` runs in the composition root before any service is built (API, `rag worker`, CLI, eval), so a
misconfigured replica stops at start with a message naming what to configure, instead of running with state only
it can see:

- SQLite state on a network filesystem is refused in every mode (SQLite's WAL needs shared memory that NFS, SMB and
  their kind do not provide: locks silently fail and the files corrupt).
- With RAG_CLUSTER, everything a host keeps to itself is refused: SQLite state (no RAG_STATE_URL), the spool folder
  (no RAG_BLOB_URL), per-process rate-limit counters, and a document store embedded in the process (LanceDB, the
  in-memory store): each host would answer from its own copy.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from app.settings import Settings

# Filesystem types (as /proc/self/mountinfo names them) on which SQLite's locking and WAL are unsafe.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "afs",
        "9p",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.glusterfs",
        "fuse.cephfs",
        "fuse.juicefs",
        "fuse.rclone",
        "fuse.mountpoint-s3",
        "efs",
    }
)
EMBEDDED_STORES = ("LanceDBDocumentStore", "InMemoryDocumentStore")  # class names: one process's copy of the data


class DeploymentError(RuntimeError):
    """The settings cannot run safely as configured; the message says what to set instead."""


def _unescape(field: str) -> str:
    """A mountinfo path field: spaces, tabs, newlines and backslashes are octal escapes there."""
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def filesystem_type(path: Path, mountinfo: str | None = None) -> str | None:
    """The type of the filesystem holding `path` (the longest mount point containing it), from `mountinfo` (default:
    /proc/self/mountinfo); None when it cannot be told (not Linux)."""
    if mountinfo is None:
        try:
            mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.abspath(path)
    best: tuple[int, str] | None = None
    for line in mountinfo.splitlines():
        before, separator, after = line.partition(" - ")
        fields = before.split()
        if not separator or len(fields) < 5 or not after.split():
            continue
        mount_point = _unescape(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) > best[0]):
            best = (len(mount_point), after.split()[0])
    return best[1] if best else None


def check_deployment(settings: Settings, document_store: Any = None, *, mountinfo: str | None = None) -> None:
    """Raise `DeploymentError` when this process must not start as configured (see the module docstring);
    `document_store`: the pipelines' store (None: not checked)."""
    if not settings.state_url:
        fs_type = filesystem_type(settings.data_dir.resolve(), mountinfo)
        if fs_type in NETWORK_FILESYSTEMS:
            raise DeploymentError(
                f"RAG_DATA_DIR {settings.data_dir} is on a network filesystem ({fs_type}): the job table, API keys "
                "and collections are SQLite files there, and SQLite's locks do not hold on network filesystems. "
                "Set RAG_STATE_URL to a PostgreSQL database (and RAG_BLOB_URL for uploads), or put RAG_DATA_DIR on "
                "a local disk"
            )
    if not settings.cluster:
        return
    missing = []
    if not settings.state_url:
        missing.append(
            "RAG_STATE_URL (PostgreSQL for jobs, API keys, collections and the document registry; SQLite files are "
            "one host's)"
        )
    if not settings.blob_url:
        missing.append(
            "RAG_BLOB_URL (s3://bucket/prefix for uploads waiting to be indexed; the spool folder is one host's)"
        )
    limited = settings.rate_limit.strip().lower() != "off"
    if limited and (settings.rate_limit_storage or "memory://").startswith("memory://"):
        missing.append(
            "RAG_RATE_LIMIT_STORAGE or RAG_REDIS_URL (memory:// counts per process: N replicas allow N times the limit)"
        )
    if missing:
        raise DeploymentError("RAG_CLUSTER=true needs " + "; ".join(missing))
    store_type = type(document_store).__name__ if document_store is not None else ""
    if store_type in EMBEDDED_STORES:
        raise DeploymentError(
            f"RAG_CLUSTER=true cannot serve from {store_type} (pipelines in {settings.pipelines_dir}): it lives "
            "inside one process, so each host would answer from its own copy. Use a shared store profile, e.g. "
            "RAG_PROFILE=pgvector with PG_CONN_STR, or weaviate / pinecone"
        )
