"""Stored responses of `POST /v1/responses` (OpenAI's Responses API): the `responses` table of the state database.

A row keeps what a later request needs: the key and collections the response used (its scope), the response it
continued (`previous_response_id`), its input as message items, the answer text, and the full response JSON that
`GET /v1/responses/{id}` returns. `history` walks the `previous_response_id` chain back into Haystack `ChatMessage`s,
oldest first, so a follow-up question is answered with its earlier turns. Rows older than the retention
(RAG_RESPONSE_RETENTION_DAYS) are deleted on every write and never returned.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from haystack.dataclasses import ChatMessage

from app.state import StateDatabase

MAX_HISTORY_TURNS = 20  # responses walked back along previous_response_id
DAY_SECONDS = 86_400.0

# Append-only schema steps of responses.db (`app.sqlite`).
SQLITE_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        collections TEXT NOT NULL,
        created_at REAL NOT NULL,
        previous_response_id TEXT,
        input TEXT NOT NULL,
        output_text TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at);
    """,
)
# PostgreSQL's steps (its own list, from the current schema on; `app.postgres`).
POSTGRES_MIGRATIONS = (
    """
    CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        collections TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        previous_response_id TEXT,
        input TEXT NOT NULL,
        output_text TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS responses_created_at ON responses (created_at);
    """,
)


def new_response_id() -> str:
    """A new response id, `resp_<32 hex>`."""
    return f"resp_{uuid.uuid4().hex}"


@dataclass
class StoredResponse:
    """One stored response. `input` holds message items (`{"role", "content": [{"type", "text"}]}`)."""

    id: str
    key_id: str
    collections: list[str]
    created_at: float
    previous_response_id: str | None
    input: list[dict[str, Any]]
    output_text: str
    body: dict[str, Any]


def message_text(item: dict[str, Any]) -> str:
    """The text of a stored message item (its text parts joined)."""
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "".join(str(part.get("text", "")) for part in content or [] if isinstance(part, dict))


class ResponseStore:
    """Save, read, delete stored responses and rebuild a conversation's history from them."""

    def __init__(self, database: StateDatabase, *, retention_days: int = 30) -> None:
        """`database`: the state database with this module's migrations; `retention_days`: rows older than this are
        deleted on each write and never read (0 keeps them forever)."""
        self.database = database
        self.retention_days = retention_days

    def _now(self, db: Any) -> float:
        """The database's time (the server's clock on PostgreSQL)."""
        return self.database.now(db)

    def _cutoff(self, now: float) -> float:
        return now - self.retention_days * DAY_SECONDS if self.retention_days > 0 else float("-inf")

    def save(
        self,
        *,
        id: str,
        key_id: str,
        collections: list[str],
        previous_response_id: str | None,
        input: list[dict[str, Any]],
        output_text: str,
        body: dict[str, Any],
    ) -> None:
        """Store a response (replacing one with the same id) and delete the expired ones."""
        with self.database.transaction() as db:
            now = self._now(db)
            if self.retention_days > 0:
                db.execute("DELETE FROM responses WHERE created_at < ?", (self._cutoff(now),))
            db.execute(
                "INSERT INTO responses (id, key_id, collections, created_at, previous_response_id, input, "
                "output_text, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET output_text = excluded.output_text, body = excluded.body",
                (
                    id,
                    key_id,
                    json.dumps(sorted(collections)),
                    now,
                    previous_response_id,
                    json.dumps(input, ensure_ascii=False),
                    output_text,
                    json.dumps(body, ensure_ascii=False),
                ),
            )

    def get(self, response_id: str) -> StoredResponse | None:
        """The stored response, or None (unknown, deleted or expired)."""
        with self.database.connect() as db:
            row = db.execute(
                "SELECT id, key_id, collections, created_at, previous_response_id, input, output_text, body "
                "FROM responses WHERE id = ? AND created_at >= ?",
                (response_id, self._cutoff(self._now(db))),
            ).fetchone()
        if row is None:
            return None
        return StoredResponse(
            id=row["id"],
            key_id=row["key_id"],
            collections=list(json.loads(row["collections"])),
            created_at=float(row["created_at"]),
            previous_response_id=row["previous_response_id"],
            input=list(json.loads(row["input"])),
            output_text=row["output_text"],
            body=dict(json.loads(row["body"])),
        )

    def delete(self, response_id: str) -> bool:
        """Delete a stored response; False when there was none."""
        with self.database.connect() as db:
            return bool(db.execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount)

    def history(
        self,
        response_id: str,
        *,
        visible: Callable[[StoredResponse], bool] = lambda response: True,
        max_turns: int = MAX_HISTORY_TURNS,
    ) -> list[ChatMessage]:
        """The conversation up to and including `response_id`, oldest first: each response's user and assistant input
        messages, then its answer. At most `max_turns` responses are walked back; the walk stops at a response that is
        gone (deleted, expired) or not `visible` (outside the caller's scope)."""
        chain: list[StoredResponse] = []
        seen: set[str] = set()
        next_id: str | None = response_id
        while next_id is not None and next_id not in seen and len(chain) < max_turns:
            seen.add(next_id)
            stored = self.get(next_id)
            if stored is None or not visible(stored):
                break
            chain.append(stored)
            next_id = stored.previous_response_id
        messages: list[ChatMessage] = []
        for stored in reversed(chain):
            for item in stored.input:
                text = message_text(item)
                if item.get("role") == "user":
                    messages.append(ChatMessage.from_user(text))
                elif item.get("role") == "assistant":
                    messages.append(ChatMessage.from_assistant(text))
            messages.append(ChatMessage.from_assistant(stored.output_text))
        return messages
