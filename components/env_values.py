"""`${VAR:-default}` references in component init parameters (not a component).

A deployment limit (a timeout, a size) that the app's Settings also know is written in the pipeline YAML as
`"${RAG_PARSE_TIMEOUT_S:-300}"`: the component keeps the reference as given (so the serialized pipeline keeps it) and
resolves it from the process environment when it warms up. `Settings.export_env()` exports the validated value
before the pipelines load, so the app and the YAML agree; outside the app (Hayhooks, a script) the default after
`:-` applies when the variable is unset.

An optional count (`n_threads` of the llama.cpp generator) is written `"${RAG_LLM_THREADS:-}"`: an empty default
means "not set", so the library's own default applies (`resolve_optional_count` returns None).

A folder (`cache_dir: ${RAG_MODEL_DIR}`) is expanded by `expand_path`, which refuses a variable that is not set.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from components.validation import check_positive_number

_REFERENCE = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}$")

NumberOrReference = int | float | str


def check_number_reference(value: NumberOrReference, arg_name: str) -> None:
    """Raise ValueError unless `value` is a positive number or a `${VAR}` / `${VAR:-number}` reference."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        check_positive_number(value, arg_name)
        return
    if not isinstance(value, str):
        raise ValueError(f"{arg_name} must be a positive number or a '${{VAR:-default}}' reference, got {value!r}")
    match = _REFERENCE.fullmatch(value.strip())
    if match is None:
        _positive(value, arg_name, value)  # a plain number written as a string
    elif match.group("default") is not None:
        _positive(match.group("default"), arg_name, value)


def resolve_number(value: NumberOrReference, arg_name: str) -> float:
    """The positive number `value` stands for: itself, or its environment variable's value (else its default).

    :raises ValueError: the variable is unset without a default, or holds something that is not a positive number.
    """
    check_number_reference(value, arg_name)
    if not isinstance(value, str):
        return float(value)
    match = _REFERENCE.fullmatch(value.strip())
    if match is None:
        return _positive(value, arg_name, value)
    raw = os.environ.get(match.group("name"))
    if raw is None or raw == "":
        if match.group("default") is None:
            raise ValueError(f"{arg_name}: environment variable {match.group('name')} is not set and has no default")
        raw = match.group("default")
    return _positive(raw, arg_name, value)


def _positive(raw: str, arg_name: str, shown: str) -> float:
    try:
        number = float(raw)
    except ValueError as error:
        raise ValueError(f"{arg_name}: {raw!r} (from {shown!r}) is not a number") from error
    if not number > 0 or number == float("inf"):
        raise ValueError(f"{arg_name}: {raw!r} (from {shown!r}) must be a positive finite number")
    return number


OptionalCountOrReference = int | str | None


def check_optional_count_reference(value: OptionalCountOrReference, arg_name: str) -> None:
    """Raise ValueError unless `value` is None, an integer >= 1 or a `${VAR}`, `${VAR:-}`, `${VAR:-int}` reference."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{arg_name} must be an integer >= 1, null or a '${{VAR:-}}' reference, got {value!r}")
    if isinstance(value, int):
        _count(str(value), arg_name, str(value))
        return
    match = _REFERENCE.fullmatch(value.strip())
    if match is None:
        _count(value, arg_name, value)
    elif match.group("default"):
        _count(match.group("default"), arg_name, value)


def resolve_optional_count(value: OptionalCountOrReference, arg_name: str) -> int | None:
    """The integer `value` stands for, or None when it is None or names an unset/empty variable with no default.

    :raises ValueError: the value (or the variable's) is not an integer >= 1.
    """
    check_optional_count_reference(value, arg_name)
    if value is None or isinstance(value, int):
        return value
    match = _REFERENCE.fullmatch(value.strip())
    if match is None:
        return _count(value, arg_name, value)
    raw = os.environ.get(match.group("name")) or match.group("default") or ""
    return _count(raw, arg_name, value) if raw.strip() else None


def _count(raw: str, arg_name: str, shown: str) -> int:
    try:
        number = int(raw.strip())
    except ValueError as error:
        raise ValueError(f"{arg_name}: {raw!r} (from {shown!r}) is not an integer") from error
    if number < 1:
        raise ValueError(f"{arg_name}: {raw!r} (from {shown!r}) must be >= 1")
    return number


def resolve_text(value: str, arg_name: str) -> str:
    """The text `value` stands for: itself, or a `${VAR}` / `${VAR:-default}` reference's variable (else its default).

    Used for a URL a deployment sets in its environment (`url: "${RAG_RERANK_URL:-http://localhost:8080}"`).

    :raises ValueError: the result is empty (an unset or empty variable without a default).
    """
    match = _REFERENCE.fullmatch(value.strip())
    if match is None:
        return value
    resolved = os.environ.get(match.group("name")) or match.group("default") or ""
    if not resolved.strip():
        raise ValueError(f"{arg_name}: environment variable {match.group('name')} is not set and has no default")
    return resolved.strip()


def expand_path(value: str, arg_name: str) -> Path:
    """`value` with its environment variables and `~` expanded.

    :raises ValueError: a variable is not set (left as `$NAME` it would be taken as part of a folder name).
    """
    expanded = os.path.expandvars(value)
    if "$" in expanded:
        raise ValueError(f"{arg_name} {value!r} names an environment variable that is not set")
    return Path(expanded).expanduser()
