"""The REST examples of docs/api.md ("## Examples") run verbatim (but for the port) against a real `rag serve`."""

import os
import re
import subprocess
from pathlib import Path

import pytest

from app.testing.servers import RAG, http_ok, server_process

ROOT = Path(__file__).resolve().parent.parent


def _examples() -> str:
    page = (ROOT / "docs" / "api.md").read_text()
    section = page[page.index("\n## Examples\n") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "docs/api.md has no bash block under '## Examples'"
    return match.group(1)


@pytest.mark.integration
@pytest.mark.slow
def test_readme_curl_examples_work(tmp_path):
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    with server_process(
        lambda port: [RAG, "serve", "--port", str(port)],
        log=tmp_path / "server.log",
        ready=lambda port: http_ok(f"http://127.0.0.1:{port}/ready"),
        env=env,
        what="rag serve",
    ) as server:
        script = "set -euo pipefail\n" + _examples().replace("localhost:8000", f"localhost:{server.port}")
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert '"status":"indexed"' in out and '"pages":113' in out
    assert "c(10.4, 5.6, 3.1)" in out
    assert "event: sources" in out and "event: token" in out and "event: done" in out
    assert '"object":"chat.completion"' in out and "data: [DONE]" in out
    assert '{"name":"manuals","documents":0,"chunks":0}204\n' in out  # created, then dropped (204)
    assert '"deleted_chunks":497' in out  # R-intro.pdf: 1,000-character chunks, split to the embedder's 256 tokens
    assert "python_gc_objects_collected_total" in out
    assert '"error":{"code":"unauthorized"' not in out  # every call that needs the key carried it
