"""Per-document access: principals, access lists and the acl ids chunks carry.

A principal is `user:<name>` or `group:<name>` (`<name>`: 1-128 of `A-Za-z0-9_.@-`); an API key may also hold `*`
(it reads every document). A document's access list is a set of principals, or none (public: every key that may use
its collection reads it). Chunks do not carry the list itself as their filter field but its id (`acl_id`): `"public"`
for none, else `acl_` + 24 hex of the SHA-256 of the sorted, de-duplicated principals; the state database keeps which
principals each id stands for (`acls(acl, principal)`), written when a document with that list is indexed or given
that list. For a key, `AccessStore.readable_acls` lists the ids it reads (`public` + every id holding one of its
principals); `app.services.visibility.read_filter` turns them into the store filter. Nothing is cached: a list given to
a document on one host is readable through every other at its next request.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from app.errors import InvalidInputError
from app.state import StateDatabase

EVERYONE = "*"  # a key's principal: reads every document
PUBLIC_ACL = "public"  # the acl id of a document without access list
MAX_PRINCIPALS = 100
ACCESS_TAG = "access"  # a job's access list, kept with its tags (a reserved meta name: no user tag can clash)
PRINCIPAL_PATTERN = re.compile(r"(user|group):[A-Za-z0-9_.@-]{1,128}")
PRINCIPAL_FORMAT = "'user:<name>' or 'group:<name>' (<name>: 1-128 of A-Z a-z 0-9 _ . @ -)"

# Append-only schema steps (`app.sqlite`).
SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS acls (
        acl TEXT NOT NULL,
        principal TEXT NOT NULL,
        PRIMARY KEY (acl, principal)
    );
    CREATE INDEX IF NOT EXISTS acls_principal ON acls (principal);
    """,
)
POSTGRES_MIGRATIONS = SQLITE_MIGRATIONS  # the same SQL in both dialects


def validate_principals(values: Iterable[Any] | None, *, allow_everyone: bool = False) -> list[str]:
    """The sorted, de-duplicated principals of `values` (None: none); InvalidInputError naming the bad one.

    `allow_everyone`: accept `*` (a key's principals); a document's access list names users and groups only."""
    if values is None:
        return []
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise InvalidInputError("principals must be a list of strings")
    clean: set[str] = set()
    for value in values:
        if not isinstance(value, str):
            raise InvalidInputError("principals must be a list of strings")
        if value == EVERYONE and allow_everyone:
            clean.add(value)
            continue
        if not PRINCIPAL_PATTERN.fullmatch(value):
            everyone = ", or '*' (every document)" if allow_everyone else ""
            raise InvalidInputError(f"principal {value[:140]!r} is not valid: expected {PRINCIPAL_FORMAT}{everyone}")
        clean.add(value)
    if len(clean) > MAX_PRINCIPALS:
        raise InvalidInputError(f"at most {MAX_PRINCIPALS} principals are allowed")
    return sorted(clean)


def acl_id(principals: Iterable[str] | None) -> str:
    """The id of an access list: "public" for none, else "acl_" + 24 hex of the hash of its sorted principals."""
    unique = sorted(set(principals or ()))
    if not unique:
        return PUBLIC_ACL
    return "acl_" + hashlib.sha256("\n".join(unique).encode()).hexdigest()[:24]


def access_meta(principals: list[str] | None) -> dict[str, Any]:
    """The reserved chunk meta of a document with this (validated) access list: `acl` (the filter field) and `access`
    (the list, for display)."""
    return {"acl": acl_id(principals), "access": list(principals or [])}


class AccessStore:
    """The `acls` table: which principals each acl id stands for (one short connection per call)."""

    def __init__(self, database: StateDatabase) -> None:
        self.db = database

    def register(self, principals: list[str] | None) -> str:
        """Record an access list (idempotent) and return its acl id; nothing is written for a public document."""
        acl = acl_id(principals)
        unique = sorted(set(principals or ()))
        if unique:
            with self.db.transaction() as db:
                for principal in unique:
                    db.execute(
                        "INSERT INTO acls (acl, principal) VALUES (?, ?) ON CONFLICT (acl, principal) DO NOTHING",
                        (acl, principal),
                    )
        return acl

    def readable_acls(self, principals: Iterable[str]) -> list[str] | None:
        """The acl ids a holder of `principals` reads: "public" and every list naming one of them; None for `*`
        (every document: no condition)."""
        held = sorted(set(principals))
        if EVERYONE in held:
            return None
        acls = {PUBLIC_ACL}
        if held:
            marks = ", ".join("?" for _ in held)
            with self.db.connect() as db:
                rows = db.execute(f"SELECT DISTINCT acl FROM acls WHERE principal IN ({marks})", tuple(held)).fetchall()
            acls.update(str(row["acl"]) for row in rows)
        return sorted(acls)
