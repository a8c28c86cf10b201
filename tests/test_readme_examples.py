"""The REST examples of docs/api.md ("## Examples") run verbatim (but for the port) against a real `rag serve`."""

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
RAG = str(Path(sys.executable).parent / "rag")


def _examples() -> str:
    page = (ROOT / "docs" / "api.md").read_text()
    section = page[page.index("\n## Examples\n") :]
    match = re.search(r"```bash\n(.*?)```", section, re.S)
    assert match, "docs/api.md has no bash block under '## Examples'"
    return match.group(1)


@pytest.mark.integration
@pytest.mark.slow
def test_readme_curl_examples_work(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path / "data")}
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([RAG, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "server not ready"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        script = "set -euo pipefail\n" + _examples().replace("localhost:8000", f"localhost:{port}")
        result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    out = result.stdout
    assert result.returncode == 0, result.stderr
    assert '"status":"indexed"' in out and '"pages":113' in out
    assert "c(10.4, 5.6, 3.1)" in out
    assert "event: sources" in out and "event: token" in out and "event: done" in out
    assert '"object":"chat.completion"' in out and "data: [DONE]" in out
    assert '{"name":"manuals","documents":0,"chunks":0}204\n' in out  # created, then dropped (204)
    assert '"deleted_chunks":351' in out
    assert "python_gc_objects_collected_total" in out
    assert '"error":{"code":"unauthorized"' not in out  # every call that needs the key carried it
