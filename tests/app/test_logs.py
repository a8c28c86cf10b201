"""Logging configuration: one formatted handler for the whole process, optional rotating file, no duplicates."""

import io
import json
import logging

from haystack import logging as haystack_logging

from app.logs import FILE_HANDLER_NAME, configure_logging
from app.settings import Settings


def test_json_lines_with_structured_fields_and_a_rotating_file(tmp_path):
    stream = io.StringIO()
    settings = Settings(data_dir=tmp_path, log_format="json", log_file=tmp_path / "logs" / "rag.log", log_file_max_mb=1)
    try:
        configure_logging(settings, stream=stream)
        configure_logging(settings, stream=stream)  # idempotent: still one line per record
        haystack_logging.getLogger("app.test").info("Indexed {file} in {ms} ms", file="a.pdf", ms=12)
        logging.getLogger("uvicorn.error").info("uvicorn says hello")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        mine = [line for line in lines if line["event"] == "Indexed a.pdf in 12 ms"]
        assert len(mine) == 1 and mine[0]["file"] == "a.pdf" and mine[0]["level"] == "info"
        assert sum(line["event"] == "uvicorn says hello" for line in lines) == 1
        written = (tmp_path / "logs" / "rag.log").read_text().splitlines()
        assert any(json.loads(line)["event"] == "Indexed a.pdf in 12 ms" for line in written)
        handlers = [h for h in logging.getLogger().handlers if h.name == FILE_HANDLER_NAME]
        assert len(handlers) == 1 and handlers[0].maxBytes == 1024 * 1024
    finally:
        configure_logging(Settings(data_dir=tmp_path))
    assert not [h for h in logging.getLogger().handlers if h.name == FILE_HANDLER_NAME]


def test_console_format_is_readable(tmp_path):
    stream = io.StringIO()
    try:
        configure_logging(Settings(data_dir=tmp_path, log_format="console"), stream=stream)
        haystack_logging.getLogger("app.test").warning("Store slow: {ms} ms", ms=900)
        text = stream.getvalue()
        assert "Store slow: 900 ms" in text and not text.lstrip().startswith("{")
    finally:
        configure_logging(Settings(data_dir=tmp_path))
