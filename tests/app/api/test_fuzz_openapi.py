"""Schemathesis fuzz of the app's own OpenAPI schema, in process (no network): no 5xx, answers match the schema.

Every operation gets a bounded, derandomized (reproducible) set of generated requests, valid ones (`positive`: they
reach the handlers) and invalid ones (`negative`: they must be refused with a 4xx), sent through the TestClient of
the tiny profile on one store. The schema is fuzzed twice: with the suite's admin key (every route is reached), and
with a reader key scoped to the default collection with principals `["group:eng"]` and a tenant, on a collection
holding documents of several access lists (the requests that name no collection reach them).

(Schemathesis' own pytest integration for fixture-built schemas, `schemathesis.pytest.from_fixture`, fails on
pytest 9.2, so the operations are looped over here, each with its own Hypothesis run.)
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from app.testing.leaks import create_key

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}  # per operation
CHECKS = [not_a_server_error, response_schema_conformance]


@pytest.fixture(scope="module")
def store_profile():
    """The schema and its handlers are the same on every store: the embedded default is enough."""
    return "default"


def _form_value(value: Any) -> str | bytes:
    return value if isinstance(value, str | bytes) else json.dumps(value)


def _httpx_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis serializes for `requests`; the TestClient is httpx: raw bodies are `content`, multipart values
    are text or bytes (generated extra form fields can be numbers), and no empty per-request cookies."""
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    if isinstance(kwargs.get("data"), bytes | str):
        kwargs["content"] = kwargs.pop("data")
    if kwargs.get("files"):
        kwargs["files"] = [
            (field, (part[0], _form_value(part[1]), *part[2:]) if isinstance(part, tuple) else _form_value(part))
            for field, part in kwargs["files"]
        ]
    return kwargs


def _fuzz_operation(
    client: Any, operation: Any, mode: GenerationMode, headers: dict[str, str], sent: list[int]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        kwargs = _httpx_kwargs(case.as_transport_kwargs(base_url="http://testserver", headers=headers))
        response = client.request(**kwargs)
        response.request.read()  # a multipart body is a stream: read it so failure reports can show it
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


def _fuzz_schema(client: Any, mode: GenerationMode, headers: dict[str, str]) -> None:
    """Every operation of the app's schema, each request carrying `headers`: no 5xx, answers match the schema."""
    schema = schemathesis.openapi.from_dict(client.app.openapi())
    failures: dict[str, str] = {}
    summary: dict[str, dict[int, int]] = {}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        sent: list[int] = []
        try:
            _fuzz_operation(client, operation, mode, headers, sent)
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # nothing about this operation can be made invalid (no parameters, or a free-form string path parameter)
        except Exception as error:  # a check failure (or several) of this operation: collect, go on with the others
            failures[operation.label] = f"{type(error).__name__}: {error}"
        summary[operation.label] = dict(sorted(Counter(sent).items()))
    total = sum(sum(counts.values()) for counts in summary.values())
    print(f"{mode}: {total} requests in {time.monotonic() - started:.1f} s, status counts: {summary}")
    assert not failures, "\n\n".join(f"{label}:\n{reason}" for label, reason in failures.items())


# First in the module: the scoped key's tenant creates the default collection before the admin's run writes to it.
SCOPED_TENANT = "fuzz"
SCOPED_DOCUMENTS = {  # file name -> access list (None: every key of the collection reads it)
    "public.txt": None,
    "eng.txt": ["group:eng"],
    "alice.txt": ["user:alice"],
}


@pytest.fixture(scope="module")
def scoped_reader(client, api_settings) -> dict[str, str]:
    """Headers of a reader key scoped to the default collection, with principals `["group:eng"]` and a tenant; the
    collection (created by that tenant's admin) holds a document per access list of SCOPED_DOCUMENTS."""
    collection = api_settings.default_collection
    tenant_admin = create_key(
        api_settings, name="fuzz tenant admin", role="admin", principals=["*"], tenant=SCOPED_TENANT
    )
    created = client.post("/collections", json={"name": collection}, headers=tenant_admin)
    assert created.status_code in (201, 409), created.text
    for name, access in SCOPED_DOCUMENTS.items():
        text = f"The {name} register records the launch code {name} for the fuzz collection.".encode()
        form = {"collection": collection, **({"access": json.dumps(access)} if access else {})}
        files = [("files", (name, text, "text/plain"))]
        upload = client.post("/documents/upload", files=files, data=form, headers=tenant_admin)
        assert upload.status_code == 200, upload.text
    return create_key(
        api_settings,
        name="fuzz scoped reader",
        role="reader",
        principals=["group:eng"],
        tenant=SCOPED_TENANT,
        collections=frozenset({collection}),
    )


@pytest.mark.integration
@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_generated_requests_with_a_scoped_reader_key_never_get_a_server_error(client, scoped_reader, mode):
    _fuzz_schema(client, mode, scoped_reader)


@pytest.mark.integration
@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_generated_requests_never_get_a_server_error_and_match_the_schema(client, auth_headers, mode):
    _fuzz_schema(client, mode, auth_headers)
