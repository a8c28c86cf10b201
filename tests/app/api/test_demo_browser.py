"""The demo page at `/` driven in a real headless Chromium (Debian's, via Playwright) against a real `rag serve`.

Create a collection, upload R-intro.pdf with a progress bar, ask a question and watch the answer stream in, check
the numbered sources and that a source number reveals its passage; a full-page screenshot is saved as an artifact
(`$RAG_TEST_ARTIFACTS/demo.png`, default `tests/artifacts/demo.png`).
"""

import os
import re
from pathlib import Path
from typing import Any

import pytest

from app.testing.api import admin_headers
from app.testing.servers import serve_rag

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(os.environ.get("RAG_TEST_ARTIFACTS") or Path(__file__).resolve().parents[2] / "artifacts")
QUESTION = "How do you create a vector x containing 10.4, 5.6 and 3.1?"
# "2.1 Vectors and assignment" is printed page 8 of R-intro, the 14th page of the PDF; the API numbers PDF pages.
EXPECTED_PAGE = 14
COLLECTION = "r-manuals"
HIGHLIGHT = re.compile(r"\bhighlight\b")


@pytest.fixture(scope="module")
def demo_profile_dir(tmp_path_factory, make_tiny_profile):
    """The default (LanceDB) profile only: the page is under test here, not the store."""
    return make_tiny_profile(tmp_path_factory.mktemp("demo") / "pipelines", max_tokens=48)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("demo-data")


@pytest.fixture(scope="module")
def server(demo_profile_dir, data_dir):
    """A server with API-key auth on, as in production."""
    with serve_rag(demo_profile_dir, data_dir, auth=True) as base:
        yield base


@pytest.fixture(scope="module")
def api_key(server, data_dir):
    return admin_headers(data_dir)["Authorization"].removeprefix("Bearer ")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (scripts/apt-packages-test.txt)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def demo_page(browser, server, api_key):
    """A fresh page with an API key already entered, and a log of its request URLs, console errors and exceptions."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server)
    context.add_init_script(f"sessionStorage.setItem('ragstack.apiKey', {api_key!r})")
    page = context.new_page()
    page.set_default_timeout(30_000)
    log: dict[str, list[str]] = {"requests": [], "problems": []}
    page.on("request", lambda request: log["requests"].append(request.url))

    def on_console(message: Any) -> None:
        if message.type == "error":
            log["problems"].append(f"console: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log["problems"].append(f"pageerror: {error}"))
    yield page, log
    context.close()


def _screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_demo_page_upload_and_streamed_answer(demo_page, server, r_intro_pdf):
    page, log = demo_page
    try:
        _run_demo(page, server, r_intro_pdf)
    except BaseException:
        _screenshot(page, "demo-failure.png")
        raise
    # the page never reached beyond the server, and nothing failed in it
    assert log["requests"] and all(url.startswith((server, "data:")) for url in log["requests"]), log["requests"]
    assert log["problems"] == []


def _run_demo(page: Any, server: str, r_intro_pdf: Path) -> None:
    from playwright.sync_api import expect

    page.goto("/")
    page.wait_for_selector("body[data-ready='true']")
    expect(page.locator("#app")).to_be_visible()

    # -- a bad name is refused in the page, a good one is created and selected
    page.fill("#new-collection", "not a name!")
    page.click("#create-form button[type=submit]")
    expect(page.locator("#create-message")).to_contain_text("Invalid name")
    page.fill("#new-collection", COLLECTION)
    page.click("#create-form button[type=submit]")
    expect(page.locator("#create-message")).to_contain_text(f"Created collection {COLLECTION}")
    expect(page.locator("#collection-select")).to_have_value(COLLECTION)
    expect(page.locator("#documents-summary")).to_contain_text("No documents")

    # -- upload the PDF: one progress bar, then the file's result
    page.set_input_files("#upload-files", str(r_intro_pdf))
    page.click("#upload-button")
    row = page.locator("#uploads li[data-filename='R-intro.pdf']")
    expect(row.locator("progress")).to_be_visible()
    expect(row).to_have_attribute("data-status", "indexed", timeout=600_000)
    expect(row.locator(".upload-status")).to_contain_text("indexed (113 pages")
    assert row.locator("progress").evaluate("p => p.value") == 100
    expect(page.locator("#documents li")).to_have_count(1)
    expect(page.locator("#documents li .doc-name")).to_have_text("R-intro.pdf")
    expect(page.locator("#collection-select option:checked")).to_contain_text("1 document")

    # -- ask: record every change of the answer element, independently of the page's own event log
    page.evaluate(
        """() => {
            window.__answerLengths = [];
            const answer = document.getElementById('answer');
            new MutationObserver(() => window.__answerLengths.push(
                {t: performance.now(), length: answer.textContent.length})
            ).observe(answer, {childList: true, subtree: true, characterData: true});
        }"""
    )
    page.fill("#question", QUESTION)
    page.click("#ask-button")
    status = page.locator("#ask-status")
    # (not wait_for_function: the page's CSP forbids the string eval it relies on)
    expect(status).to_have_attribute("data-phase", re.compile(r"^(done|error)$"), timeout=600_000)
    assert status.get_attribute("data-phase") == "done", status.text_content()

    events = page.evaluate("window.__demoEvents")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "sources" and kinds[-1] == "done", kinds
    assert set(kinds) == {"sources", "token", "done"}, kinds
    tokens = [e for e in events if e["event"] == "token"]
    done = events[-1]
    assert len(tokens) >= 5, kinds
    # the answer grew in the page while it streamed: several partial lengths were on screen before `done`
    partial = {e["answerLength"] for e in tokens if 0 < e["answerLength"]}
    assert len(partial) >= 2, tokens
    seen = [m for m in page.evaluate("window.__answerLengths") if m["t"] < done["t"] and m["length"] > 0]
    assert len({m["length"] for m in seen}) >= 2, seen
    assert seen[0]["length"] < seen[-1]["length"] and seen[0]["t"] < tokens[-1]["t"]

    answer_text = page.locator("#answer").text_content()
    assert answer_text == done["data"]["answer"] and answer_text.strip()
    assert done["data"]["refused"] is False
    expect(page.locator("#timings")).to_have_text(
        re.compile(r"^retrieval [\d.]+ m?s · generation [\d.]+ m?s · total [\d.]+ m?s$")
    )

    # -- the sources: "[n] filename, page p", one of them the R-intro page with the answer
    sources = page.locator("#sources li[data-n]")
    assert sources.count() == len(events[0]["data"]["sources"]) >= 1
    wheres = sources.locator(".source-where").all_text_contents()
    assert f"R-intro.pdf, page {EXPECTED_PAGE}" in wheres, wheres
    n = next(s["n"] for s in events[0]["data"]["sources"] if s["page"] == EXPECTED_PAGE and "c(10.4" in s["text"])
    item = page.locator(f"#source-{n}")
    expect(item.locator(".source-n")).to_have_text(f"[{n}]")
    expect(item.locator(".passage")).to_be_hidden()  # collapsed until asked for

    # -- after `done` the cited sources are marked
    cited = done["data"]["cited"]
    for number in range(1, sources.count() + 1):
        expected = "true" if number in cited else "false"
        expect(page.locator(f"#source-{number}")).to_have_attribute("data-cited", expected)
        expect(page.locator(f"#source-{number} .badge")).to_be_visible(visible=number in cited)

    # -- a [n] in the answer is a link to its source; clicking it reveals and highlights the passage
    links = page.locator("#answer a.cite")
    if cited:
        assert links.count() >= 1, answer_text
        first = int(links.first.get_attribute("data-n"))
        expect(page.locator(f"#source-{first} .passage")).to_be_hidden()
        links.first.click()
        expect(page.locator(f"#source-{first}")).to_have_class(HIGHLIGHT)
        expect(page.locator(f"#source-{first} .passage")).to_be_visible()
    # the number in the sources list reveals its passage too
    item.locator(".source-n").click()
    expect(item).to_have_class(HIGHLIGHT)
    expect(item.locator(".passage")).to_be_visible()
    expect(item.locator(".passage")).to_contain_text("c(10.4, 5.6, 3.1")  # the chunk with the vector (x <- or -> x)

    shot = _screenshot(page, "demo.png")
    assert shot.stat().st_size > 10_000

    # -- search only: sources without an answer (no LLM call)
    page.check("#search-only")
    page.click("#ask-button")
    expect(status).to_have_attribute("data-phase", "done", timeout=120_000)
    expect(status).to_contain_text("Search only")
    expect(page.locator("#answer")).to_have_text("")
    assert f"R-intro.pdf, page {EXPECTED_PAGE}" in page.locator("#sources .source-where").all_text_contents()

    # -- delete the document from the list
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#documents li button.danger")
    expect(page.locator("#documents-summary")).to_contain_text("No documents", timeout=60_000)
    expect(page.locator("#documents li")).to_have_count(0)
    expect(page.locator("#documents-message")).to_contain_text("Deleted R-intro.pdf")


def test_demo_page_asks_for_an_api_key_and_uses_the_one_entered(browser, server, api_key):
    from playwright.sync_api import expect

    context = browser.new_context(base_url=server)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        page.goto("/")
        page.wait_for_selector("body[data-ready=true]")
        info = page.locator("#collection-info")
        assert "API key is required" in info.inner_text()
        page.fill("#api-key", api_key)
        page.click("#key-form button[type=submit]")
        expect(info).not_to_contain_text("API key")  # polls from Python: the page's CSP forbids eval
        assert page.input_value("#api-key") == ""  # the key is not left in the field
        assert page.evaluate("sessionStorage.getItem('ragstack.apiKey')") == api_key
    finally:
        context.close()
