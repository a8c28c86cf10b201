"""Per-document access: principals are validated, an access list has one stable id, the `acls` table says which
lists a key's principals read, on SQLite and PostgreSQL (`state_url`); keys carry their principals."""

from __future__ import annotations

import pytest

from app.errors import InvalidInputError
from app.services import access as access_module
from app.services import api_keys as api_keys_module
from app.services.access import PUBLIC_ACL, AccessStore, acl_id, validate_principals
from app.services.api_keys import KeyStore, Role, bootstrap_admin_key, new_key
from app.services.visibility import read_filter, tenant_filter


@pytest.fixture
def acls(open_state) -> AccessStore:
    return AccessStore(open_state(access_module, "access", "access.db"))


@pytest.fixture
def keys(open_state) -> KeyStore:
    return KeyStore(open_state(api_keys_module, "api_keys", "auth.db"))


def test_an_access_list_has_one_id_whatever_its_order_and_repeats():
    assert acl_id(None) == acl_id([]) == PUBLIC_ACL
    same = acl_id(["group:eng", "user:bob"])
    assert same == acl_id(["user:bob", "group:eng", "user:bob"])
    assert same.startswith("acl_") and len(same) == 4 + 24
    assert acl_id(["group:eng"]) != same


@pytest.mark.parametrize(
    "bad", [["eng"], ["group:"], ["group:a b"], ["role:x"], ["*"], [1], "group:eng", ["user:" + "a" * 129]]
)
def test_malformed_principals_are_refused_with_the_reason(bad):
    with pytest.raises(InvalidInputError, match="principal"):
        validate_principals(bad)


def test_at_most_100_principals_and_star_only_for_keys():
    assert validate_principals(["*", "group:eng"], allow_everyone=True) == ["*", "group:eng"]
    with pytest.raises(InvalidInputError, match="at most 100"):
        validate_principals([f"user:u{n}" for n in range(101)])


def test_a_key_reads_public_lists_and_the_lists_naming_one_of_its_principals(acls, state_url):
    eng = acls.register(["group:eng", "user:bob"])
    hr = acls.register(["group:hr"])
    assert acls.register(["user:bob", "group:eng"]) == eng  # idempotent
    assert acls.readable_acls([]) == [PUBLIC_ACL]
    assert acls.readable_acls(["group:eng"]) == sorted([PUBLIC_ACL, eng])
    assert acls.readable_acls(["user:bob", "group:hr"]) == sorted([PUBLIC_ACL, eng, hr])
    assert acls.readable_acls(["*"]) is None  # every document: no condition


def test_read_filter_accepts_public_and_missing_acl_and_is_none_for_star(acls, keys):
    eng = acls.register(["group:eng"])
    reader, _ = keys.create(name="r", role=Role.READER, collections=None, principals=["group:eng"]) or (None, "")
    assert reader is not None and reader.principals == frozenset({"group:eng"})
    condition = read_filter(reader, acls)
    assert condition == {
        "operator": "AND",
        "conditions": [
            tenant_filter(reader),  # a key without tenant: the chunks without tenant
            {
                "operator": "OR",
                "conditions": [
                    {"field": "meta.acl", "operator": "in", "value": sorted([PUBLIC_ACL, eng])},
                    {"field": "meta.acl", "operator": "==", "value": None},
                ],
            },
        ],
    }
    admin, _ = keys.create(name="a", role=Role.ADMIN, collections=None, principals=["*"]) or (None, "")
    assert admin is not None and read_filter(admin, acls) is None


def test_keys_store_their_principals_and_the_admin_keys_read_everything(keys, tmp_path):
    created = keys.create(name="k", role=Role.READER, collections=None, principals=["user:bob", "group:eng"])
    assert created is not None
    assert keys.authenticate(created[1]).principals == frozenset({"user:bob", "group:eng"})
    assert keys.get(created[0].id).principals == frozenset({"user:bob", "group:eng"})
    plain = keys.create(name="p", role=Role.READER, collections=None)
    assert plain is not None and keys.get(plain[0].id).principals == frozenset()
    with pytest.raises(InvalidInputError):
        keys.create(name="bad", role=Role.READER, collections=None, principals=["eng"])
    admin = new_key()[1]
    assert keys.ensure_admin_key(admin).principals == frozenset({"*"})
    with keys.db.connect() as db:  # a key stored before principals existed gets them at the next start
        db.execute("UPDATE api_keys SET principals = '[]' WHERE id = ?", (admin.split("_")[1],))
    assert keys.ensure_admin_key(admin).principals == frozenset({"*"})


def test_the_bootstrap_admin_key_reads_everything(open_state, tmp_path):
    keys = KeyStore(open_state(api_keys_module, "api_keys", "boot.db"))
    path = bootstrap_admin_key(keys, tmp_path / "admin.key")
    assert path is not None
    assert keys.authenticate(path.read_text().strip()).principals == frozenset({"*"})
