"""app.testing.fakes: one fault API (fail_next, mode, reset) for every fake server."""

import httpx
import pytest

from app.testing.fakes import FakeOllama, FakeOpenAI, check_fault


def _post(url: str, body: dict) -> httpx.Response:
    return httpx.post(url, json=body, timeout=5, trust_env=False)


def test_queued_faults_come_first_then_the_standing_mode():
    with FakeOpenAI() as fake:
        chat = f"{fake.base_url}/chat/completions"
        fake.fail_next("429")
        fake.mode = "503"
        first, second = _post(chat, {"n": 1}), _post(chat, {"n": 2})
        assert (first.status_code, second.status_code) == (429, 503)
        assert first.headers["retry-after-ms"] == "10"
        assert second.json()["error"]["message"] == "injected 503"
        fake.reset()
        ok = _post(chat, {"n": 3})
        assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "Recovered [1]."
        assert fake.requests == [{"n": 3}] and fake.paths == ["/v1/chat/completions"]


def test_a_dropped_connection_and_a_cut_stream():
    with FakeOllama() as fake:
        fake.fail_next("drop")
        with pytest.raises(httpx.TransportError):
            _post(f"{fake.url}/api/chat", {"model": "m"})
        fake.fail_next("cut")
        with pytest.raises(httpx.TransportError):
            _post(f"{fake.url}/api/chat", {"model": "m", "stream": True})
        whole = _post(f"{fake.url}/api/chat", {"model": "m", "stream": True})
        assert whole.status_code == 200 and len(whole.text.splitlines()) > 1
        assert len(fake.bodies("/api/chat")) == 3


def test_a_hang_outlasts_the_client_timeout():
    with FakeOllama() as fake:
        fake.fail_next("hang")
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{fake.url}/api/embed", json={"model": "m", "input": "x"}, timeout=0.3, trust_env=False)


def test_embeddings_come_from_the_given_function():
    with FakeOllama(embed=lambda text: [float(len(text))]) as fake:
        body = _post(f"{fake.url}/api/embed", {"model": "e", "input": ["ab", "abc"]}).json()
        assert body["embeddings"] == [[2.0], [3.0]] and body["model"] == "e"
        assert _post(f"{fake.url}/api/other", {}).status_code == 404


@pytest.mark.parametrize("fault", ["", "slow", "5xx", "OK"])
def test_unknown_faults_are_refused(fault):
    with pytest.raises(ValueError):
        check_fault(fault)
    with pytest.raises(ValueError):
        FakeOllama().fail_next(fault)
