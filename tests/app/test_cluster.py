"""`app.cluster`: a deployment that would keep state to one host is refused at start, with what to set instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.cluster import DeploymentError, check_deployment, filesystem_type
from app.settings import Settings

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
40 27 0:50 / /srv/shared rw,relatime - nfs4 fileserver:/export rw,vers=4.2
41 40 8:2 / /srv/shared/local\\040disk rw,relatime - xfs /dev/sdb1 rw
"""

CLUSTER = {
    "cluster": True,
    "state_url": "postgresql://rag@db/rag",
    "blob_url": "s3://uploads/rag",
    "redis_url": "redis://redis:6379/0",
}


class PgvectorDocumentStore:  # stands for a shared store: only the class name is checked
    pass


class LanceDBDocumentStore:
    pass


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_the_longest_mount_point_names_the_filesystem() -> None:
    assert filesystem_type(Path("/srv/shared/rag/data"), MOUNTINFO) == "nfs4"
    assert filesystem_type(Path("/srv/shared/local disk/data"), MOUNTINFO) == "xfs"  # octal-escaped space
    assert filesystem_type(Path("/srv/sharedness"), MOUNTINFO) == "ext4"  # a prefix of the name is not inside
    assert filesystem_type(Path("/var/lib/rag"), MOUNTINFO) == "ext4"


def test_sqlite_state_on_a_network_filesystem_is_refused_even_on_one_host() -> None:
    settings = Settings(data_dir=Path("/srv/shared/rag"))
    with pytest.raises(DeploymentError, match=r"network filesystem \(nfs4\).*RAG_STATE_URL"):
        check_deployment(settings, mountinfo=MOUNTINFO)
    check_deployment(settings.model_copy(update={"state_url": "postgresql://db/rag"}), mountinfo=MOUNTINFO)
    check_deployment(Settings(data_dir=Path("/var/lib/rag")), mountinfo=MOUNTINFO)  # a local disk: fine


def test_one_host_defaults_start_as_before(tmp_path: Path) -> None:
    check_deployment(_settings(tmp_path), LanceDBDocumentStore())


@pytest.mark.parametrize(
    ("unset", "named"),
    [
        ("state_url", "RAG_STATE_URL"),
        ("blob_url", "RAG_BLOB_URL"),
        ("redis_url", "RAG_RATE_LIMIT_STORAGE or RAG_REDIS_URL"),
    ],
)
def test_cluster_mode_names_each_missing_shared_part(tmp_path: Path, unset: str, named: str) -> None:
    values = {name: value for name, value in CLUSTER.items() if name != unset}
    with pytest.raises(DeploymentError, match=named):
        check_deployment(_settings(tmp_path, **values), PgvectorDocumentStore())


def test_cluster_mode_without_rate_limits_needs_no_redis(tmp_path: Path) -> None:
    values = {name: value for name, value in CLUSTER.items() if name != "redis_url"}
    check_deployment(_settings(tmp_path, rate_limit="off", **values), PgvectorDocumentStore())


def test_cluster_mode_refuses_an_embedded_store_and_names_a_shared_profile(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match=r"LanceDBDocumentStore.*RAG_PROFILE=pgvector"):
        check_deployment(_settings(tmp_path, **CLUSTER), LanceDBDocumentStore())
    check_deployment(_settings(tmp_path, **CLUSTER), PgvectorDocumentStore())


def test_rate_limits_are_shared_through_redis_when_a_redis_url_is_set(tmp_path: Path) -> None:
    assert _settings(tmp_path).rate_limit_storage == "memory://"
    assert _settings(tmp_path, redis_url="redis://r:6379/1").rate_limit_storage == "redis://r:6379/1"
    assert _settings(tmp_path, job_queue="redis").rate_limit_storage == "redis://127.0.0.1:6379/0"
    explicit = _settings(tmp_path, redis_url="redis://r:6379/1", rate_limit_storage="memory://")
    assert explicit.rate_limit_storage == "memory://"


def test_the_cli_refuses_cluster_mode_on_the_embedded_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DATA_DIR", str(tmp_path / "data"))
    for name, value in CLUSTER.items():
        monkeypatch.setenv(f"RAG_{name.upper()}", str(value))
    result = CliRunner().invoke(cli, ["collections"], catch_exceptions=False)
    assert result.exit_code == 2
    assert "LanceDBDocumentStore" in result.output and "RAG_PROFILE=pgvector" in result.output
