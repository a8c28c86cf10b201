"""OpenAI's Responses API driven by the official `openai` SDK over the TestClient (tiny LLM profile, both stores):
file_search answers with citations, streaming (raw events and `responses.stream`), stored responses, follow-ups by
`previous_response_id` (the history handed to the query service), scope, and the 4xx of what is not supported."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from openai import BadRequestError, NotFoundError, OpenAI, PermissionDeniedError
from openai.types.responses import (
    Response,
    ResponseFileSearchToolCall,
    ResponseItem,
    ResponseOutputMessage,
    ResponseStreamEvent,
)
from pydantic import TypeAdapter

from app.api.routes import responses as responses_route
from app.api.routes.responses import citations
from app.errors import UpstreamUnavailableError
from app.main import create_app
from app.services.query import Source, StreamEvent
from app.settings import Settings
from app.testing.api import admin_headers
from app.testing.profiles import edit_yaml

pytestmark = pytest.mark.integration

COLLECTION = "responses-faq"
QUESTION = "What is Python?"
TOOLS = [{"type": "file_search", "vector_store_ids": [COLLECTION]}]


def _sdk(client, headers: dict[str, str]) -> OpenAI:
    return OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key=headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )


@pytest.fixture(scope="module")
def sdk(client, auth_headers, html_file) -> OpenAI:
    files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
    assert client.post("/documents/upload", files=files, data={"collection": COLLECTION}).status_code == 200
    return _sdk(client, auth_headers)


@pytest.fixture
def spy(client, monkeypatch):
    """The `history` each call of the query service (JSON and stream) was given."""
    seen: list = []
    state = client.app.state.rag
    ask = state.query.ask

    def spied_ask(*args, **kwargs):
        seen.append(kwargs.get("history"))
        return ask(*args, **kwargs)

    stream = responses_route.stream_answer

    def spied_stream(*args, **kwargs):
        seen.append(kwargs.get("history"))
        return stream(*args, **kwargs)

    monkeypatch.setattr(state.query, "ask", spied_ask)
    monkeypatch.setattr(responses_route, "stream_answer", spied_stream)
    return seen


def _no_extra(model) -> None:
    """The SDK parsed the reply into its own types, with only our documented extensions left over."""
    assert isinstance(model, Response)
    assert set(model.model_extra or {}) <= {"refused", "claims", "store", "standalone_question"}
    for item in model.output:
        assert not isinstance(item, dict), item


def _check_annotations(response: Response) -> None:
    search, message = response.output
    assert isinstance(search, ResponseFileSearchToolCall) and isinstance(message, ResponseOutputMessage)
    part = message.content[0]
    by_passage = {r.model_extra["passage"]: r for r in search.results or []}
    for annotation in part.annotations:
        assert annotation.type == "file_citation"
        n = annotation.model_extra["passage"]
        assert part.text[: annotation.index].endswith(f"[{n}]") or annotation.index == len(part.text)
        if by_passage:
            assert annotation.file_id == by_passage[n].file_id and annotation.filename == by_passage[n].filename
    if not response.model_extra["refused"]:
        assert part.annotations, part.text
        cited = {int(m) for m in re.findall(r"\[(\d+)\]", part.text)}
        assert cited & {a.model_extra["passage"] for a in part.annotations}


def test_create_answers_from_the_vector_store_with_file_citations(sdk, html_file):
    response = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS, include=["file_search_call.results"])
    _no_extra(response)
    assert response.status == "completed" and response.id.startswith("resp_")
    search, message = response.output
    assert search.type == "file_search_call" and search.status == "completed" and search.queries == [QUESTION]
    assert search.results and all(r.filename == html_file.name and r.text for r in search.results)
    assert message.role == "assistant" and response.output_text == message.content[0].text
    assert response.output_text.strip()
    assert response.usage is not None and response.usage.total_tokens == 0
    _check_annotations(response)
    without = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS, store=False)
    assert without.output[0].results is None  # results only when `include` asks for them
    with pytest.raises(NotFoundError):
        sdk.responses.retrieve(without.id)  # store=False keeps nothing


def test_streaming_events_add_up_to_the_stored_response(sdk):
    events = list(
        sdk.responses.create(
            model="rag", input=QUESTION, tools=TOOLS, stream=True, include=["file_search_call.results"]
        )
    )
    types = [e.type for e in events]
    assert types[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert types[5:9] == [
        "response.file_search_call.completed",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert "response.output_text.delta" in types
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = events[-1].response
    _no_extra(final)
    assert deltas == final.output_text == next(e.text for e in events if e.type == "response.output_text.done")
    added = [e.annotation for e in events if e.type == "response.output_text.annotation.added"]
    assert [a.index for a in added] == [a.index for a in final.output[1].content[0].annotations]
    _check_annotations(final)
    stored = sdk.responses.retrieve(final.id)
    assert stored.output_text == final.output_text and stored.id == final.id


def test_the_stream_helper_parses_the_events(sdk):
    with sdk.responses.stream(model="rag", input=QUESTION, tools=TOOLS) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == text


def test_previous_response_id_gives_the_history(sdk, spy):
    first = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS)
    follow_up = sdk.responses.create(model="rag", input="Is it free?", tools=TOOLS, previous_response_id=first.id)
    assert follow_up.previous_response_id == first.id
    assert spy[0] == []
    assert [(m.role.value, m.text) for m in spy[1]] == [("user", QUESTION), ("assistant", first.output_text)]
    third = sdk.responses.create(
        model="rag",
        input=[
            {"role": "user", "content": "Who made it?"},
            {"role": "assistant", "content": [{"type": "output_text", "text": "Guido."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "When?"}]},
        ],
        tools=TOOLS,
        previous_response_id=follow_up.id,
        stream=True,
    )
    final = list(third)[-1].response
    earlier = [QUESTION, first.output_text, "Is it free?", follow_up.output_text, "Who made it?", "Guido."]
    assert [m.text for m in spy[2]] == earlier
    items = sdk.responses.input_items.list(final.id, order="asc")
    assert [(i.role, i.content[0].text) for i in items.data] == [
        ("user", "Who made it?"),
        ("assistant", "Guido."),
        ("user", "When?"),
    ]
    with pytest.raises(NotFoundError):
        sdk.responses.create(model="rag", input="x?", tools=TOOLS, previous_response_id="resp_unknown")


def test_delete(sdk):
    response = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS)
    sdk.responses.delete(response.id)
    with pytest.raises(NotFoundError):
        sdk.responses.retrieve(response.id)
    with pytest.raises(NotFoundError):
        sdk.responses.delete(response.id)


def test_a_scoped_key_sees_only_its_collections_stores_and_responses(sdk, client, api_settings):
    other = _sdk(client, admin_headers(api_settings.data_dir, role="reader", collections=frozenset({"elsewhere"})))
    with pytest.raises(PermissionDeniedError):
        other.responses.create(model="rag", input=QUESTION, tools=TOOLS)
    mine = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS)
    with pytest.raises(PermissionDeniedError):
        other.responses.retrieve(mine.id)
    with pytest.raises(PermissionDeniedError):
        other.responses.delete(mine.id)
    with pytest.raises(NotFoundError):  # a follow-up on a response outside the scope: as if it did not exist
        other.responses.create(
            model="rag",
            input="x?",
            tools=[{"type": "file_search", "vector_store_ids": ["elsewhere"]}],
            previous_response_id=mine.id,
        )
    assert sdk.responses.retrieve(mine.id).id == mine.id


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"tools": []}, "answers only from documents"),
        ({"tools": [{"type": "web_search"}]}, "only 'file_search'"),
        ({"tools": [{"type": "file_search", "vector_store_ids": [COLLECTION, "b"]}]}, "one vector store"),
        ({"input": [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]}, "'system' messages"),
        ({"input": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "x"}]}, "must end with"),
        ({"tools": [{"type": "file_search", "vector_store_ids": [COLLECTION], "filters": {"type": "eq"}}]}, "key None"),
    ],
)
def test_what_is_not_supported_is_a_400_with_the_reason(sdk, body, reason):
    request = {"model": "rag", "input": QUESTION, "tools": TOOLS, **body}
    with pytest.raises(BadRequestError, match=re.escape(reason)):
        sdk.responses.create(**request)


def test_an_unknown_vector_store_is_404(sdk):
    with pytest.raises(NotFoundError):
        sdk.responses.create(
            model="rag", input=QUESTION, tools=[{"type": "file_search", "vector_store_ids": ["no-such-store"]}]
        )


def _source(n: int, cited: bool) -> Source:
    return Source(
        n=n, document_id=f"d{n}", filename=f"f{n}.pdf", page=n, chunk_id=f"c{n}", score=1.0, text="t", cited=cited
    )


def test_a_citation_points_just_after_its_marker():
    text = "Install it with apt [2]. Then run it [1]."
    found = citations(text, [_source(1, True), _source(2, True), _source(3, False)])
    assert [(a.passage, a.index, a.file_id, a.page) for a in found] == [(2, 23, "d2", 2), (1, 40, "d1", 1)]
    assert text[: found[0].index].endswith("[2]") and text[: found[1].index].endswith("[1]")
    assert [a.index for a in citations("No marker.", [_source(4, True)])] == [10]


def test_every_reply_validates_against_the_sdks_types(sdk, client):
    """The SDK builds its models without validation: validating the raw JSON finds a missing required field."""
    body = {"model": "rag", "input": QUESTION, "tools": TOOLS, "include": ["file_search_call.results"]}
    created = client.post("/v1/responses", json=body)
    assert created.status_code == 200, created.text
    Response.model_validate(created.json())
    Response.model_validate(client.get(f"/v1/responses/{created.json()['id']}").json())
    follow_up = {
        **body,
        "input": [{"role": "assistant", "content": "Earlier."}, {"role": "user", "content": QUESTION}],
        "stream": True,
    }
    events = TypeAdapter(ResponseStreamEvent)
    with client.stream("POST", "/v1/responses", json=follow_up) as stream:
        lines = [line for line in stream.iter_lines() if line]
    kinds = [line.removeprefix("event: ") for line in lines if line.startswith("event: ")]
    payloads = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]
    assert kinds == [p["type"] for p in payloads]
    for payload in payloads:
        events.validate_python(payload)
    items = client.get(f"/v1/responses/{payloads[-1]['response']['id']}/input_items").json()
    assert [TypeAdapter(ResponseItem).validate_python(item).type for item in items["data"]] == ["message", "message"]


def test_a_failure_mid_stream_ends_it_with_response_failed(sdk, monkeypatch):
    async def failing(*args, **kwargs):
        yield StreamEvent("sources", [])
        yield StreamEvent("token", "Half an ans")
        yield StreamEvent("error", UpstreamUnavailableError("the model server is down"))

    monkeypatch.setattr(responses_route, "stream_answer", failing)
    events = list(sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS, stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.status == "failed"
    assert events[-1].response.error.code == "upstream_unavailable"
    assert "the model server is down" in events[-1].response.error.message


def test_file_search_filters_are_openai_attribute_filters(sdk, html_file):
    def ask(filters):
        tools = [{"type": "file_search", "vector_store_ids": [COLLECTION], "filters": filters}]
        return sdk.responses.create(model="rag", input=QUESTION, tools=tools, include=["file_search_call.results"])

    matching = ask({"type": "eq", "key": "file_name", "value": html_file.name})
    assert matching.output[0].results and all(r.filename == html_file.name for r in matching.output[0].results)
    nothing = ask({"type": "and", "filters": [{"type": "eq", "key": "team", "value": "nobody-has-this-tag"}]})
    assert not nothing.output[0].results
    assert nothing.model_extra["refused"] is True and not nothing.output[1].content[0].annotations


def test_instructions_join_the_prompt_s_system_message(sdk, client, monkeypatch):
    builder = client.app.state.rag.pipelines.query.pipeline.get_component("prompt_builder")
    prompts: list = []
    run = builder.run

    def spied_run(**kwargs):
        result = run(**kwargs)
        prompts.append(result["prompt"])
        return result

    monkeypatch.setattr(builder, "run", spied_run)
    response = sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS, instructions="Answer like a pirate.")
    assert response.instructions == "Answer like a pirate."
    system = prompts[-1][0]
    assert system.role.value == "system" and system.text.endswith("\nAnswer like a pirate.")
    sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS)
    assert "pirate" not in prompts[-1][0].text  # the next request's system message is the pipeline's own


def test_instructions_are_a_400_when_the_pipeline_s_prompt_takes_none(tmp_path, make_tiny_profile, store_profile):
    if store_profile != "default":
        pytest.skip("one store is enough: the check is on the query pipeline's prompt")
    pipelines = make_tiny_profile(tmp_path / "pipelines")

    def without_instructions(query: dict) -> None:
        builder = query["components"]["prompt_builder"]["init_parameters"]
        builder["template"] = re.sub(
            r"\{%- if instructions %\}.*?\{%- endif %\}\n", "", builder["template"], flags=re.S
        )
        assert "instructions" not in builder["template"]

    edit_yaml(pipelines / "query.yml", without_instructions)
    settings = Settings(data_dir=tmp_path / "data", pipelines_dir=pipelines, rate_limit="off")
    with TestClient(create_app(settings)) as client:
        sdk = _sdk(client, admin_headers(settings.data_dir))
        files = [("files", ("a.txt", b"Python is a programming language.", "text/plain"))]
        assert (
            client.post(
                "/documents/upload",
                files=files,
                data={"collection": COLLECTION},
                headers=admin_headers(settings.data_dir),
            ).status_code
            == 200
        )
        with pytest.raises(BadRequestError, match="no `instructions` variable"):
            sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS, instructions="Answer like a pirate.")
        assert sdk.responses.create(model="rag", input=QUESTION, tools=TOOLS).output_text
