"""The response store (SQLite and PostgreSQL, `state_url`): save/get/delete, retention, and the history walked back
along `previous_response_id` as Haystack chat messages."""

from __future__ import annotations

import pytest

from app.services import responses as responses_module
from app.services.responses import DAY_SECONDS, ResponseStore, new_response_id


@pytest.fixture
def store(open_state) -> ResponseStore:
    return ResponseStore(open_state(responses_module, "responses", "responses.db"), retention_days=30)


def _user(text: str) -> dict:
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


def _save(store: ResponseStore, question: str, answer: str, previous: str | None = None, **extra) -> str:
    response_id = new_response_id()
    store.save(
        id=response_id,
        key_id=extra.get("key_id", "k1"),
        collections=extra.get("collections", ["alpha"]),
        previous_response_id=previous,
        input=extra.get("input", [_user(question)]),
        output_text=answer,
        body={"id": response_id, "object": "response", "output_text": answer},
    )
    return response_id


def test_a_saved_response_is_read_back_by_another_instance_and_deleted(store, open_state):
    response_id = _save(store, "What is X?", "X is Y [1].", collections=["beta", "alpha"])
    other = ResponseStore(open_state(responses_module, "responses", "responses.db"))
    stored = other.get(response_id)
    assert stored is not None and response_id.startswith("resp_")
    assert stored.collections == ["alpha", "beta"] and stored.key_id == "k1"
    assert stored.body == {"id": response_id, "object": "response", "output_text": "X is Y [1]."}
    assert stored.input == [_user("What is X?")] and stored.output_text == "X is Y [1]."
    assert other.delete(response_id) is True
    assert store.get(response_id) is None and store.delete(response_id) is False


def test_history_walks_the_chain_oldest_first(store):
    first = _save(store, "How do I install it?", "Run apt install x [1].")
    second = _save(
        store,
        "",
        "Run apt remove x [2].",
        first,
        input=[
            {"role": "assistant", "content": [{"type": "output_text", "text": "Anything else?"}]},
            _user("And how do I undo that?"),
        ],
    )
    messages = store.history(second)
    assert [(m.role.value, m.text) for m in messages] == [
        ("user", "How do I install it?"),
        ("assistant", "Run apt install x [1]."),
        ("assistant", "Anything else?"),
        ("user", "And how do I undo that?"),
        ("assistant", "Run apt remove x [2]."),
    ]
    assert store.history("resp_unknown") == []


def test_history_is_bounded_and_stops_outside_the_scope(store):
    previous = None
    for turn in range(25):
        previous = _save(store, f"q{turn}", f"a{turn}", previous, collections=["beta" if turn < 10 else "alpha"])
    assert previous is not None
    walked = store.history(previous, max_turns=20)
    assert len(walked) == 40 and walked[0].text == "q5" and walked[-1].text == "a24"
    scoped = store.history(previous, visible=lambda r: r.collections == ["alpha"])
    assert len(scoped) == 30 and scoped[0].text == "q10"


def test_expired_responses_are_not_read_and_are_swept_on_write(store):
    old = _save(store, "old?", "old.")
    with store.database.connect() as db:
        db.execute("UPDATE responses SET created_at = created_at - ? WHERE id = ?", (31 * DAY_SECONDS, old))
    assert store.get(old) is None
    kept = ResponseStore(store.database, retention_days=0)
    assert kept.get(old) is not None  # 0 keeps them forever
    _save(store, "new?", "new.")  # a write sweeps
    with store.database.connect() as db:
        assert db.execute("SELECT COUNT(*) FROM responses WHERE id = ?", (old,)).fetchone()[0] == 0
