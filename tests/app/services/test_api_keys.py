"""The key store: hashed keys, constant-time lookup, scopes, roles, revocation, the first-start admin key and
RAG_ADMIN_KEY, on SQLite and on PostgreSQL (`state_url`): two stores on one database are two replicas."""

import threading

import pytest

from app.errors import InvalidInputError, NotFoundError, PermissionDeniedError
from app.services import api_keys
from app.services.api_keys import (
    KEY_PATTERN,
    AdminKeyError,
    KeyStore,
    Role,
    bootstrap_admin_key,
    new_key,
    parse_scope,
)


@pytest.fixture
def keys(open_state):
    """Factory: another KeyStore on the test's tables (another process, or another host on PostgreSQL)."""
    return lambda: KeyStore(open_state(api_keys, "api_keys", "auth.db"))


@pytest.fixture
def store(keys):
    return keys()


def _run_together(*targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def test_a_created_key_authenticates_and_only_its_hash_is_stored(store, tmp_path):
    created = store.create(name="ci", role=Role.WRITER, collections=frozenset({"a", "b"}))
    assert created is not None
    key, secret = created
    assert KEY_PATTERN.fullmatch(secret) and secret.startswith(key.prefix + "_")
    found = store.authenticate(secret)
    assert found == key and found.collections == {"a", "b"} and found.role is Role.WRITER
    with store.db.connect() as db:
        rows = "|".join(str(value) for row in db.execute("SELECT * FROM api_keys").fetchall() for value in row)
    stored = rows.encode() + b"".join(p.read_bytes() for p in tmp_path.glob("auth.db*"))
    assert key.id in rows and secret.encode() not in stored and secret.split("_")[-1].encode() not in stored


def test_a_key_revoked_through_one_replica_is_refused_by_another_at_once(keys):
    first, second = keys(), keys()
    key, secret = first.create(name="shared", role=Role.READER, collections=None)
    assert second.authenticate(secret) == key  # warm: the other replica knows it
    first.revoke(key.id)
    assert second.authenticate(secret) is None
    assert second.get(key.id).revoked_at is not None


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


def test_bootstrap_creates_one_admin_key_even_when_workers_race(keys, tmp_path):
    paths = [tmp_path / f"admin-{i}.key" for i in range(4)]
    stores = [keys() for _ in paths]  # one per worker process (or replica)
    results: list = []
    _run_together(
        *(lambda s=s, p=p: results.append(bootstrap_admin_key(s, p)) for s, p in zip(stores, paths, strict=True))
    )
    written = [r for r in results if r is not None]
    assert len(written) == 1 and written[0].stat().st_mode & 0o777 == 0o600
    assert len(keys().list()) == 1
    key = keys().authenticate(written[0].read_text().strip())
    assert key is not None and key.role is Role.ADMIN and key.collections is None


def test_the_admin_key_from_the_secret_is_stored_hashed_once_by_every_replica(keys, tmp_path):
    secret = new_key()[1]
    stores = [keys() for _ in range(4)]  # replicas starting together with the same RAG_ADMIN_KEY
    results: list = []
    _run_together(*(lambda s=s: results.append(s.ensure_admin_key(secret)) for s in stores))
    assert len({r.id for r in results}) == 1 and secret.startswith(results[0].prefix + "_")
    [stored] = keys().list()
    assert stored.role is Role.ADMIN and stored.collections is None and stored.name == "RAG_ADMIN_KEY"
    assert keys().authenticate(secret) == stored
    assert keys().ensure_admin_key(secret) == stored  # the next start changes nothing
    assert bootstrap_admin_key(keys(), tmp_path / "admin.key") is None  # a key exists: no admin.key is written
    assert not (tmp_path / "admin.key").exists()


def test_a_revoked_admin_key_from_the_secret_stays_revoked(store):
    secret = new_key()[1]
    key = store.ensure_admin_key(secret)
    store.revoke(key.id)
    again = store.ensure_admin_key(secret)
    assert again.revoked_at is not None and store.authenticate(secret) is None


@pytest.mark.parametrize(
    "value", ["", "rag_123", "rag_ABCDEF123456_" + "x" * 43, "Bearer rag_" + "a" * 12 + "_" + "x" * 43]
)
def test_a_malformed_admin_key_is_refused_naming_the_variable_and_the_format(store, value):
    with pytest.raises(AdminKeyError, match=r"RAG_ADMIN_KEY .*rag_<12 lowercase hex>_<43 characters"):
        store.ensure_admin_key(value)
    assert store.list(include_revoked=True) == []


def test_an_admin_key_whose_id_is_stored_with_another_secret_is_refused(store):
    key, _ = store.create(name="existing", role=Role.READER, collections=None)
    other = f"rag_{key.id}_{new_key()[1].split('_', 2)[2]}"
    with pytest.raises(AdminKeyError, match=f"RAG_ADMIN_KEY has the id rag_{key.id}"):
        store.ensure_admin_key(other)
    assert store.authenticate(other) is None and store.get(key.id).role is Role.READER


def test_generated_keys_are_well_formed_and_distinct():
    first, second = new_key(), new_key()
    assert first != second
    for key_id, key in (first, second):
        match = KEY_PATTERN.fullmatch(key)
        assert match is not None and match.group(1) == key_id


def test_a_key_of_a_tenant_is_stored_with_it_and_the_tenant_is_validated(keys):
    created = keys().create(name="acme reader", role=Role.READER, collections=None, tenant="acme")
    assert created is not None
    other = keys()  # another replica reads it back
    assert other.authenticate(created[1]).tenant == "acme"
    assert {k.tenant for k in other.list()} == {"acme"}
    for bad in ("", "a" * 65, "ac me", "acme\n", "../x"):
        with pytest.raises(InvalidInputError):
            other.create(name="x", role=Role.READER, collections=None, tenant=bad)


def test_the_tenant_boundary_answers_a_collection_beyond_it_as_missing():
    def key(role: Role, tenant: str | None, names: set[str] | None, only: bool = True) -> api_keys.ApiKey:
        boundary = api_keys.TenantBoundary(frozenset(names), only) if names is not None else None
        return api_keys.ApiKey("k", "k", role, None, "", tenant=tenant, boundary=boundary)

    acme = key(Role.ADMIN, "acme", {"apples"})
    acme.require(Role.READER, "apples")
    assert acme.allows("apples") and not acme.allows("bananas")
    with pytest.raises(NotFoundError, match="collection 'bananas' does not exist"):
        acme.require(Role.READER, "bananas")
    with pytest.raises(NotFoundError, match="vector store 'bananas' does not exist"):
        acme.require(Role.READER, "bananas", noun="vector store")
    acme.require(Role.WRITER, "new-name", creating=True)  # the collections service checks the name
    assert not acme.is_operator
    untenanted = key(Role.WRITER, None, {"apples"}, only=False)  # every collection but the tenants'
    assert untenanted.allows("alpha") and not untenanted.allows("apples")
    with pytest.raises(NotFoundError):
        untenanted.require(Role.WRITER, "apples")
    untenanted.require(Role.WRITER, "apples", creating=True)  # the collections service answers 409
    operator = key(Role.ADMIN, None, None)
    assert operator.is_operator and operator.allows("apples")
    assert not key(Role.READER, "acme", None).allows("apples")  # a tenant's key whose boundary was not read: none
    scoped = api_keys.ApiKey("k", "k", Role.READER, frozenset({"alpha"}), "", tenant="acme")
    with pytest.raises(PermissionDeniedError):  # outside its scope: 403 before the tenant boundary, as today
        scoped.require(Role.READER, "beta")
