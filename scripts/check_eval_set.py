"""
Check the SQLite eval set (eval/sqlite/questions.jsonl) against its corpus (eval/sqlite/corpus/).

Checks: every line is a JSON object with the documented fields, ids are unique, every expected source file
exists in the corpus, and every `answer_terms` entry of an answerable question appears (case-insensitive,
whitespace-normalised) in the visible text of EVERY page listed in its `expected_sources`. By default the
terms must also appear in the text the indexing pipeline extracts from the page (the project's HTML
converter, trafilatura): a fact dropped by the converter can never be retrieved. `--visible-only` skips that.
Terms must contain a letter or digit: `rag eval` compares them with punctuation replaced by spaces.

    .venv/bin/python scripts/check_eval_set.py            # exit 1 on any error
    bash scripts/build_eval_corpus.sh first, so the corpus exists.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ID_RE = re.compile(r"^q\d{3,}$")
INVISIBLE = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
WEAK_TERM_PAGES = 6  # informational: answer terms found in this many corpus pages or more


class _VisibleText(HTMLParser):
    """Text a browser would show: everything outside <head>, <script>, <style>, <svg>..."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in INVISIBLE:
            self.hidden += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in INVISIBLE and self.hidden:
            self.hidden -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def normalise(text: str) -> str:
    """NFKC (as the indexing pipeline's cleaner), case-folded, whitespace collapsed."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def visible_text(path: Path) -> str:
    parser = _VisibleText()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return normalise("".join(parser.parts))


def converter_texts(paths: list[Path]) -> dict[str, str]:
    """Text of each page as the indexing pipeline extracts it (components.converters, trafilatura)."""
    sys.path.insert(0, str(ROOT))
    from components.converters.trafilatura_html_to_document import TrafilaturaHtmlToDocument

    converter = TrafilaturaHtmlToDocument()
    texts = {}
    for path in paths:
        documents = converter.run(sources=[path])["documents"]
        texts[path.name] = normalise(" ".join(d.content or "" for d in documents))
    return texts


def check(questions_path: Path, corpus: Path, use_converter: bool) -> int:
    errors: list[str] = []
    pages = sorted(corpus.glob("*.html"))
    if not pages:
        print(f"no HTML pages in {corpus}: run bash scripts/build_eval_corpus.sh", file=sys.stderr)
        return 1
    visible = {p.name: visible_text(p) for p in pages}
    indexed = converter_texts(pages) if use_converter else {}

    seen_ids: set[str] = set()
    seen_questions: set[str] = set()
    answerable = unanswerable = multi_source = 0
    used_pages: set[str] = set()
    weak: list[str] = []
    for lineno, line in enumerate(questions_path.read_text(encoding="utf-8").splitlines(), 1):
        where = f"line {lineno}"
        if not line.strip():
            errors.append(f"{where}: empty line")
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"{where}: invalid JSON ({error})")
            continue
        if not isinstance(item, dict):
            errors.append(f"{where}: not a JSON object")
            continue
        qid = item.get("id")
        where = f"line {lineno} ({qid})"
        if not isinstance(qid, str) or not ID_RE.match(qid):
            errors.append(f"{where}: id must look like q001")
        elif qid in seen_ids:
            errors.append(f"{where}: duplicate id")
        seen_ids.add(str(qid))
        question = item.get("question")
        if not isinstance(question, str) or not question.strip():
            errors.append(f"{where}: missing question")
        elif normalise(question) in seen_questions:
            errors.append(f"{where}: duplicate question text")
        else:
            seen_questions.add(normalise(question))
        if not isinstance(item.get("answerable"), bool):
            errors.append(f"{where}: answerable must be true or false")
            continue

        if not item["answerable"]:
            unanswerable += 1
            for field in ("expected_answer", "expected_sources", "answer_terms"):
                if item.get(field):
                    errors.append(f"{where}: unanswerable question has {field}")
            continue

        answerable += 1
        if not isinstance(item.get("expected_answer"), str) or not item["expected_answer"].strip():
            errors.append(f"{where}: missing expected_answer")
        sources = item.get("expected_sources")
        if not isinstance(sources, list) or not sources:
            errors.append(f"{where}: expected_sources must be a non-empty list")
            continue
        terms = item.get("answer_terms")
        if not isinstance(terms, list) or not terms or not all(isinstance(t, str) and t.strip() for t in terms):
            errors.append(f"{where}: answer_terms must be a non-empty list of strings")
            continue
        for term in terms:
            if not re.sub(r"[\W_]", "", term):
                errors.append(f"{where}: term {term!r} has no letter or digit (a punctuation-blind match is vacuous)")
        if len(sources) > 1:
            multi_source += 1
        for source in sources:
            name = source.get("file") if isinstance(source, dict) else None
            if not isinstance(name, str) or name not in visible:
                errors.append(f"{where}: expected source {source!r} is not a page of {corpus}")
                continue
            used_pages.add(name)
            for term in terms:
                if normalise(term) not in visible[name]:
                    errors.append(f"{where}: term {term!r} not in the visible text of {name}")
                elif indexed and normalise(term) not in indexed[name]:
                    errors.append(f"{where}: term {term!r} is visible in {name} but not in the converter's text")
        hits = [n for n, text in visible.items() if all(normalise(t) in text for t in terms)]
        if len(hits) >= WEAK_TERM_PAGES:
            weak.append(f"{qid} {terms} ({len(hits)} pages)")

    for message in errors:
        print(f"ERROR {message}")
    print(f"questions: {answerable + unanswerable} ({answerable} answerable, {unanswerable} unanswerable)")
    print(f"answerable with 2+ expected sources: {multi_source}")
    print(f"corpus pages: {len(pages)}, used as expected sources: {len(used_pages)}")
    unused = sorted(set(visible) - used_pages)
    if unused:
        print(f"pages no question points to: {', '.join(unused)}")
    if weak:
        print(f"answer terms found in {WEAK_TERM_PAGES}+ pages (a 'contains' match on them is weak):")
        for line in weak:
            print(f"  {line}")
    print(f"checked against: visible text{' + converter text' if indexed else ''}")
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=Path, default=ROOT / "eval/sqlite/questions.jsonl")
    parser.add_argument("--corpus", type=Path, default=ROOT / "eval/sqlite/corpus")
    parser.add_argument("--visible-only", action="store_true", help="skip the converter-text check")
    args = parser.parse_args()
    return check(args.questions, args.corpus, use_converter=not args.visible_only)


if __name__ == "__main__":
    sys.exit(main())
