"""Fixtures of the service tests: the state database of a store on this test's backend (SQLite or PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from app.state import StateDatabase, open_state_database


@pytest.fixture
def open_state(state_url: str | None, tmp_path: Path) -> Callable[..., StateDatabase]:
    """Factory: `open_state(module, name, file_name)` -> the store's database (the module's migrations) on this test's
    backend; each call opens another instance on the same tables (another process, or another host)."""

    def open_database(module: ModuleType, name: str, file_name: str) -> StateDatabase:
        return open_state_database(
            state_url,
            name=name,
            sqlite_path=tmp_path / file_name,
            sqlite_migrations=module.SQLITE_MIGRATIONS,
            postgres_migrations=module.POSTGRES_MIGRATIONS,
        )

    return open_database
