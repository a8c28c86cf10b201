"""Every relative link in the Markdown documentation (README, CONTRIBUTING, SECURITY, docs/) points to a file that
exists, every `#anchor` to a heading of its target page, and every repository path quoted in backticks
(`app/...`, `components/...`, `tests/...`, ...) to a file or folder of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "SECURITY.md", *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.M)
QUOTED_PATH = re.compile(r"`((?:app|components|tests|scripts|bench|eval|pipelines|deploy|docs)/[^`\s<>$]*)`")
# Quoted paths that exist only once made: a test's screenshot, the eval corpus built by scripts/build_eval_corpus.sh.
GENERATED = {"tests/artifacts/demo.png", "eval/sqlite/corpus/"}


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(match) for match in HEADING.findall(FENCE.sub("", page.read_text()))}


def broken_links(page: Path) -> list[str]:
    """The links of `page` whose file or heading does not exist."""
    broken = []
    for target in LINK.findall(FENCE.sub("", page.read_text())):
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(target)
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(target)
    return broken


def missing_paths(page: Path, root: Path = ROOT) -> list[str]:
    """Repository paths quoted in backticks in `page` (glob patterns allowed) that match nothing under `root`."""
    missing = []
    for quoted in QUOTED_PATH.findall(page.read_text()):
        if quoted in GENERATED or "..." in quoted:  # `app/...`: a placeholder, not a path
            continue
        if not (any(root.glob(quoted.rstrip("/"))) if "*" in quoted else (root / quoted).exists()):
            missing.append(quoted)
    return missing


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_quoted_repository_paths_exist(page):
    assert missing_paths(page) == []


def test_a_moved_file_is_found(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "settings.py").write_text("")
    page = tmp_path / "page.md"
    page.write_text("`app/settings.py`, `app/*.py`, `app/services/jobs.py`, `components/*/gone_*.py`, `app/...`\n")
    assert missing_paths(page, tmp_path) == ["app/services/jobs.py", "components/*/gone_*.py"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert page.exists()
    assert broken_links(page) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "there.md").write_text("# A heading: with + punctuation\n")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](there.md) [ok](there.md#a-heading-with--punctuation) [web](https://example.org/x)\n"
        "[missing](nowhere.md) [bad anchor](there.md#no-such-heading)\n"
        "```\n[in a code block](ignored.md)\n```\n"
    )
    assert broken_links(page) == ["nowhere.md", "there.md#no-such-heading"]


def test_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
