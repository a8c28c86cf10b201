"""Schemathesis fuzz of the app's own OpenAPI schema, in process (no network): no 5xx, answers match the schema.

Every operation gets a bounded, derandomized (reproducible) set of generated requests, valid ones (`positive`: they
reach the handlers) and invalid ones (`negative`: they must be refused with a 4xx), sent through the TestClient of
the tiny profile on one store. Every request carries `HEADERS`, the one place to add credentials.

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

# Sent with every generated request: the suite's admin key (set by the test), so every route is reached.
HEADERS: dict[str, str] = {}
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


def _fuzz_operation(client: Any, operation: Any, mode: GenerationMode, sent: list[int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[mode],
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        kwargs = _httpx_kwargs(case.as_transport_kwargs(base_url="http://testserver", headers=HEADERS))
        response = client.request(**kwargs)
        response.request.read()  # a multipart body is a stream: read it so failure reports can show it
        sent.append(response.status_code)
        case.validate_response(response, checks=CHECKS)

    run()


@pytest.mark.integration
@pytest.mark.parametrize("mode", list(EXAMPLES), ids=str)
def test_generated_requests_never_get_a_server_error_and_match_the_schema(client, auth_headers, mode):
    HEADERS.update(auth_headers)
    schema = schemathesis.openapi.from_dict(client.app.openapi())
    failures: dict[str, str] = {}
    summary: dict[str, dict[int, int]] = {}
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        sent: list[int] = []
        try:
            _fuzz_operation(client, operation, mode, sent)
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
