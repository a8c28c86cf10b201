import pytest
from openai import BadRequestError, OpenAI

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sdk(client, auth_headers, html_file):
    files = [("files", (html_file.name, html_file.read_bytes(), "text/html"))]
    assert client.post("/documents/upload", files=files, data={"collection": "chat"}).status_code == 200
    return OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key=auth_headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )


def test_models_lists_the_rag_model(sdk):
    assert [m.id for m in sdk.models.list().data] == ["rag"]


def test_non_streaming_completion_with_sources(sdk, html_file):
    completion = sdk.chat.completions.create(
        model="rag",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": "What is Python?"}],
        extra_body={"collection": "chat", "top_k": 2},
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content
    sources = completion.model_extra["sources"]
    assert len(sources) == 2 and sources[0]["n"] == 1 and sources[0]["filename"] == html_file.name


def test_streaming_completion(sdk):
    stream = sdk.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": "What is Python?"}],
        stream=True,
        extra_body={"collection": "chat"},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.strip()
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["sources"]


def test_refusal_and_bad_requests(sdk):
    completion = sdk.chat.completions.create(
        model="rag",
        messages=[{"role": "user", "content": "Who won the 1998 world cup?"}],
        extra_body={"collection": "chat"},
    )
    assert completion.choices[0].message.content.startswith("I don't know")
    assert completion.model_extra["refused"] is True
    with pytest.raises(BadRequestError):
        sdk.chat.completions.create(model="rag", messages=[{"role": "system", "content": "no user message"}])
