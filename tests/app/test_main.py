"""The API's start: the first admin key comes from RAG_ADMIN_KEY (stored hashed, no `admin.key`, idempotent across
replicas, refused when malformed or when its id holds another secret) or, without it, from a first start."""

from __future__ import annotations

import threading

import pytest
from pydantic import SecretStr

from app.composition import key_store
from app.main import bootstrap_keys
from app.services.api_keys import AdminKeyError, Role, new_key
from app.settings import Settings


@pytest.fixture
def settings(tmp_path, state_url):
    return Settings(data_dir=tmp_path / "data", state_url=state_url, admin_key=SecretStr(new_key()[1]))


def test_the_admin_key_from_the_secret_is_stored_hashed_and_no_key_file_is_written(settings):
    replicas = [key_store(settings) for _ in range(3)]  # every replica starts with the same secret, together
    threads = [threading.Thread(target=bootstrap_keys, args=(settings, keys)) for keys in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bootstrap_keys(settings, key_store(settings))  # a restart
    secret = settings.admin_key.get_secret_value()
    [stored] = key_store(settings).list(include_revoked=True)
    assert key_store(settings).authenticate(secret) == stored and stored.role is Role.ADMIN
    assert not settings.bootstrap_key_file.exists()


def test_a_revoked_admin_key_from_the_secret_stays_revoked_after_a_restart(settings):
    bootstrap_keys(settings, key_store(settings))
    keys = key_store(settings)
    [stored] = keys.list()
    keys.revoke(stored.id)
    bootstrap_keys(settings, key_store(settings))
    assert key_store(settings).authenticate(settings.admin_key.get_secret_value()) is None


def test_a_malformed_admin_key_stops_the_start(settings):
    bad = settings.model_copy(update={"admin_key": SecretStr("rag_not-a-key")})
    with pytest.raises(AdminKeyError, match=r"RAG_ADMIN_KEY is not a well-formed API key: expected rag_<12"):
        bootstrap_keys(bad, key_store(bad))
    assert key_store(bad).list(include_revoked=True) == [] and not bad.bootstrap_key_file.exists()


def test_another_secret_with_a_stored_id_stops_the_start(settings):
    bootstrap_keys(settings, key_store(settings))
    key_id = settings.admin_key.get_secret_value().split("_")[1]
    forged = f"rag_{key_id}_{new_key()[1][-43:]}"
    other = settings.model_copy(update={"admin_key": SecretStr(forged)})
    with pytest.raises(AdminKeyError, match="another secret"):
        bootstrap_keys(other, key_store(other))
    assert key_store(other).authenticate(forged) is None


def test_without_the_secret_the_first_start_writes_admin_key(settings):
    plain = settings.model_copy(update={"admin_key": None})
    bootstrap_keys(plain, key_store(plain))
    written = plain.bootstrap_key_file.read_text().strip()
    assert key_store(plain).authenticate(written) is not None


@pytest.mark.integration
def test_the_api_starts_with_the_admin_key_from_the_secret_and_refuses_a_malformed_one(tmp_path, make_tiny_profile):
    from fastapi.testclient import TestClient

    from app.main import create_app

    secret = new_key()[1]
    settings = Settings(
        data_dir=tmp_path / "data",
        pipelines_dir=make_tiny_profile(tmp_path / "pipelines"),
        admin_key=SecretStr(secret),
        rate_limit="off",
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/keys", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        assert client.get("/keys", headers={"Authorization": f"Bearer {new_key()[1]}"}).status_code == 401
    assert not settings.bootstrap_key_file.exists()
    malformed = settings.model_copy(update={"admin_key": SecretStr(secret + "x")})
    with pytest.raises(AdminKeyError, match="RAG_ADMIN_KEY"), TestClient(create_app(malformed)):
        pass
