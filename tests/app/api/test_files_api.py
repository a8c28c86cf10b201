"""The Files API through the official `openai` SDK (TestClient as its http client)."""

import uuid

import pytest
from openai import APIStatusError, BadRequestError, NotFoundError, OpenAI

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store_profile():
    """Files live in the state database and the blob store, not the document store: one profile is enough."""
    return "default"


@pytest.fixture(scope="module")
def sdk(client, auth_headers):
    return OpenAI(
        base_url=f"{client.base_url}/v1",
        api_key=auth_headers["Authorization"].removeprefix("Bearer "),
        http_client=client,
        max_retries=0,
    )


def test_create_list_retrieve_content_delete(sdk, api_settings):
    data = f"release notes {uuid.uuid4().hex}".encode()
    created = sdk.files.create(file=("notes.txt", data, "text/plain"), purpose="assistants")
    assert created.id.startswith("file-") and len(created.id) == 29
    assert created.bytes == len(data) and created.filename == "notes.txt" and created.purpose == "assistants"
    twin = sdk.files.create(file=("copy.txt", data, "text/plain"), purpose="user_data")
    stored = [p for p in (api_settings.data_dir / "files").rglob("*") if p.is_file()]
    assert sum(p.read_bytes() == data for p in stored) == 1  # the same bytes are stored once
    assert sdk.files.retrieve(created.id).filename == "notes.txt"
    assert sdk.files.content(created.id).content == data
    listed = sdk.files.list(purpose="assistants")
    assert created.id in [f.id for f in listed] and twin.id not in [f.id for f in listed]
    deleted = sdk.files.delete(created.id)
    assert deleted.id == created.id and deleted.deleted and deleted.object == "file"
    with pytest.raises(NotFoundError):
        sdk.files.retrieve(created.id)
    assert sdk.files.content(twin.id).content == data  # still stored for the other file
    sdk.files.delete(twin.id)
    assert not any(p.is_file() and p.read_bytes() == data for p in (api_settings.data_dir / "files").rglob("*"))


def test_list_is_a_cursor_page(sdk, client):
    ids = [
        sdk.files.create(file=(f"{n}.txt", f"page {n} {uuid.uuid4()}".encode()), purpose="assistants").id
        for n in range(3)
    ]
    page = client.get("/v1/files", params={"limit": 2, "order": "desc"}).json()
    assert page["object"] == "list" and len(page["data"]) == 2 and page["has_more"] is True
    assert page["first_id"] == ids[2] and page["last_id"] == ids[1]
    after = client.get("/v1/files", params={"limit": 1, "order": "desc", "after": page["last_id"]}).json()
    assert after["data"][0]["id"] == ids[0]
    assert set(ids) <= {f.id for f in sdk.files.list(limit=1)}  # the SDK pages through every file


def test_bad_uploads(sdk, client, api_settings):
    with pytest.raises(BadRequestError, match="purpose"):
        sdk.files.create(file=("a.txt", b"x"), purpose="fine-tune")
    too_large = b"x" * (api_settings.max_upload_mb * 1024 * 1024 + 1)
    with pytest.raises(APIStatusError) as raised:
        sdk.files.create(file=("big.txt", too_large), purpose="assistants")
    assert raised.value.status_code == 413
    assert client.post("/v1/files", data={"purpose": "assistants"}).status_code == 422
    with pytest.raises(NotFoundError):
        sdk.files.delete("file-000000000000000000000000")
