"""The key store: hashed keys, constant-time lookup, scopes, roles, revocation and the first-start admin key."""

import threading

import pytest

from app.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from app.services.api_keys import KEY_PATTERN, KeyStore, Role, bootstrap_admin_key, parse_scope


@pytest.fixture
def store(tmp_path):
    return KeyStore(tmp_path / "auth.db")


def test_a_created_key_authenticates_and_only_its_hash_is_stored(store, tmp_path):
    created = store.create(name="ci", role=Role.WRITER, collections=frozenset({"a", "b"}))
    assert created is not None
    key, secret = created
    assert KEY_PATTERN.fullmatch(secret) and secret.startswith(key.prefix + "_")
    found = store.authenticate(secret)
    assert found == key and found.collections == {"a", "b"} and found.role is Role.WRITER
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("auth.db*"))
    assert secret.encode() not in stored and secret.split("_")[-1].encode() not in stored


def test_wrong_forged_and_malformed_keys_are_refused(store):
    _, secret = store.create(name="ci", role=Role.READER, collections=None)
    other_secret = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for presented in (other_secret, "rag_000000000000_" + "x" * 43, "", "Bearer " + secret, secret + " "):
        assert store.authenticate(presented) is None


def test_revoked_keys_are_refused_and_listed_only_on_request(store):
    key, secret = store.create(name="old", role=Role.ADMIN, collections=None)
    revoked = store.revoke(key.id)
    assert revoked.revoked_at and store.authenticate(secret) is None
    assert store.list() == [] and [k.id for k in store.list(include_revoked=True)] == [key.id]
    with pytest.raises(NotFoundError):
        store.revoke("ffffffffffff")


def test_roles_are_ordered_and_scopes_checked():
    from app.services.api_keys import ApiKey

    writer = ApiKey(id="1", name="w", role=Role.WRITER, collections=frozenset({"a"}), created_at="")
    writer.require(Role.READER, "a")
    writer.require(Role.WRITER, "a")
    with pytest.raises(PermissionDeniedError, match="role"):
        writer.require(Role.ADMIN, "a")
    with pytest.raises(PermissionDeniedError, match="collection 'b'"):
        writer.require(Role.READER, "b")
    everything = ApiKey(id="2", name="x", role=Role.ADMIN, collections=None, created_at="")
    assert everything.covers(writer) and everything.covers(None)
    assert writer.covers(frozenset({"a"})) and not writer.covers(None) and not writer.covers(frozenset({"a", "b"}))


def test_scope_parsing():
    assert parse_scope(["*"]) is None and parse_scope([]) is None
    assert parse_scope(["a", "b-2"]) == {"a", "b-2"}
    for bad in (["*", "a"], ["../x"], ["a b"]):
        with pytest.raises(InvalidInputError):
            parse_scope(bad)


def test_key_names_are_bounded(store):
    with pytest.raises(InvalidInputError):
        store.create(name="", role=Role.READER, collections=None)
    with pytest.raises(InvalidInputError):
        store.create(name="n" * 101, role=Role.READER, collections=None)


def test_bootstrap_creates_one_admin_key_even_when_workers_race(tmp_path):
    paths = [tmp_path / f"admin-{i}.key" for i in range(4)]
    results: list = []
    threads = [
        threading.Thread(target=lambda p=p: results.append(bootstrap_admin_key(KeyStore(tmp_path / "auth.db"), p)))
        for p in paths
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = [r for r in results if r is not None]
    assert len(written) == 1 and written[0].stat().st_mode & 0o777 == 0o600
    key = KeyStore(tmp_path / "auth.db").authenticate(written[0].read_text().strip())
    assert key is not None and key.role is Role.ADMIN and key.collections is None
