"""docs/configuration.md and .env.example are generated from `Settings`: stale files, or a setting added without
regenerating them, fail here (scripts/gen_config_docs.py)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from pydantic import Field

from app.settings import Settings
from app.testing.scripts import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> ModuleType:
    return load_script("gen_config_docs")


gen = _load_generator()


class _SettingsWithANewField(Settings):
    """What a contributor does: add a setting, forget to regenerate."""

    brand_new_knob: int = Field(default=7, ge=1, le=9, description="A setting nobody has documented yet.")


class _SettingsWithoutDescription(Settings):
    undocumented: int = 3


def test_configuration_page_is_current():
    assert (ROOT / "docs" / "configuration.md").read_text() == gen.render_page(Settings), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_env_example_is_current():
    current = (ROOT / ".env.example").read_text()
    assert current == gen.render_env_example(current, Settings), (
        ".env.example is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_check_mode_passes_on_the_committed_files(capsys):
    assert gen.main(["--check"]) == 0, capsys.readouterr().out


def test_every_setting_is_on_the_page_and_in_env_example():
    page = (ROOT / "docs" / "configuration.md").read_text()
    env_example = (ROOT / ".env.example").read_text()
    for name, field in Settings.model_fields.items():
        variable = f"RAG_{name.upper()}"
        assert f"| `{variable}` |" in page
        assert f"{variable}" in env_example
        assert field.description and field.description.replace("|", "\\|") in page


def test_a_new_setting_makes_both_files_stale():
    page = gen.render_page(_SettingsWithANewField)
    assert page != (ROOT / "docs" / "configuration.md").read_text()
    assert "| `RAG_BRAND_NEW_KNOB` | int | `7` | 1 to 9 | A setting nobody has documented yet. |" in page
    current = (ROOT / ".env.example").read_text()
    regenerated = gen.render_env_example(current, _SettingsWithANewField)
    assert regenerated != current
    assert "# A setting nobody has documented yet.\nRAG_BRAND_NEW_KNOB=7\n" in regenerated


def test_check_mode_fails_after_a_setting_is_added(monkeypatch, capsys):
    monkeypatch.setattr(gen, "Settings", _SettingsWithANewField)
    assert gen.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "docs/configuration.md is stale" in out and ".env.example is stale" in out


def test_a_setting_without_description_is_refused():
    with pytest.raises(SystemExit, match="undocumented"):
        gen.render_page(_SettingsWithoutDescription)


def test_hand_written_lines_of_env_example_are_kept():
    current = "# compose header\n" + gen.BEGIN + "\nold\n" + gen.END + "\nPOSTGRES_USER=rag\n"
    regenerated = gen.render_env_example(current, Settings)
    assert regenerated.startswith("# compose header\n" + gen.BEGIN + "\n")
    assert regenerated.endswith(gen.END + "\nPOSTGRES_USER=rag\n")
    assert "\nold\n" not in regenerated
