"""Logging, configured once at start: JSON lines in production, a readable console in development.

Every record of the process (the app's, Haystack's, uvicorn's) goes through one handler on the root logger, formatted
by Haystack's structlog setup; a request's id is bound with `structlog.contextvars`, so each line a request causes
(including Haystack's own, in worker threads) carries `request_id`. Document text and questions are logged only
when `RAG_LOG_CONTENT=true`; secrets never are (they live in `Secret`s, which do not serialize their values).
"""

from __future__ import annotations

import logging
import logging.handlers
from typing import TextIO

from haystack import logging as haystack_logging

from app.settings import Settings

FILE_HANDLER_NAME = "ragstack-file"
_HAYSTACK_HANDLER_NAME = "HaystackLoggingHandler"
# the mcp SDK logs every stateless request at INFO ("Terminating session")
_QUIET = {
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "uvicorn.access": logging.WARNING,
    "mcp": logging.WARNING,
}


def configure_logging(settings: Settings, *, stream: TextIO | None = None) -> None:
    """Install the process-wide handler (idempotent); `stream` redirects it (tests)."""
    use_json = None if settings.log_format == "auto" else settings.log_format == "json"
    haystack_logging.configure_logging(use_json=use_json, logger_name="", propagate=True)
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    handler = next((h for h in root.handlers if h.name == _HAYSTACK_HANDLER_NAME), None)
    if handler is not None and stream is not None and isinstance(handler, logging.StreamHandler):
        handler.setStream(stream)
    root.handlers = [h for h in root.handlers if h.name != FILE_HANDLER_NAME]
    if settings.log_file is not None and handler is not None:
        settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.RotatingFileHandler(
            settings.log_file,
            maxBytes=settings.log_file_max_mb * 1024 * 1024,
            backupCount=settings.log_file_backups,
            encoding="utf-8",
        )
        file_handler.name = FILE_HANDLER_NAME
        file_handler.setFormatter(handler.formatter)
        root.addHandler(file_handler)
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would print a second, unformatted line
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
