"""
Check a shipped eval set (eval/<set>/questions.jsonl) against its corpus (eval/<set>/corpus/).

Checks: every line is a JSON object with the documented fields, ids are unique, `split` is "dev" or "test" and
follows the seeded rule of scripts/assign_eval_split.py, every expected source exists in the corpus, and every
`answer_terms` entry of an answerable question appears (case-insensitive, whitespace- and NFKC-normalised) in the
text of EVERY source listed in its `expected_sources`:
- HTML corpus (eval/sqlite): the visible text of the page; by default also the text the indexing pipeline extracts
  from it (the project's HTML converter, trafilatura): a fact dropped by the converter can never be retrieved.
  `--visible-only` skips that.
- PDF corpus (eval/debian-reference, eval/gnuplot, eval/r-manuals): each source names `file` and `page` (1-based), and
  the terms must appear in the text pypdfium2 (the PDF converter's extractor) gives for that page of that file, with
  its line-end hyphens joined or kept as the converter does.
Terms must contain a letter or digit: `rag eval` compares them with punctuation replaced by spaces.
Unanswerable questions may list `absent_terms` (what the question is about); a term found anywhere in the corpus is
reported as a warning (the question may be answerable after all).

    .venv/bin/python scripts/check_eval_set.py                          # the SQLite set; exit 1 on any error
    .venv/bin/python scripts/check_eval_set.py --set debian-reference   # the Debian Reference set
    .venv/bin/python scripts/check_eval_set.py --set gnuplot            # the gnuplot manual
    .venv/bin/python scripts/check_eval_set.py --set r-manuals          # three R manuals (R-admin, R-data, R-FAQ)
    bash scripts/build_eval_corpus.sh first, so the corpora exist.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
import unicodedata
from html.parser import HTMLParser
from pathlib import Path
from types import ModuleType

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


def pdf_page_texts(paths: list[Path]) -> dict[str, str]:
    """Text of every page of every PDF as pypdfium2 extracts it, with its line-end hyphens decided as the converter
    decides them, keyed "file#page" (page 1-based)."""
    import pypdfium2

    sys.path.insert(0, str(ROOT))
    from components.converters.dehyphenation import dehyphenate

    texts = {}
    for path in paths:
        pdf = pypdfium2.PdfDocument(path)
        pages = []
        try:
            for index in range(len(pdf)):
                page = pdf[index]
                textpage = page.get_textpage()
                pages.append(textpage.get_text_range())
                textpage.close()
                page.close()
        finally:
            pdf.close()
        for index, text in enumerate(dehyphenate(pages)):
            texts[f"{path.name}#{index + 1}"] = normalise(text)
    return texts


def _split_rule() -> ModuleType:
    """scripts/assign_eval_split.py, by file path (scripts/ is not a package)."""
    name = "assign_eval_split"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent / "assign_eval_split.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def source_key(source: object, is_pdf: bool) -> str | None:
    """ "file" for an HTML source, "file#page" for a PDF source; None when the entry lacks what that needs."""
    if not isinstance(source, dict) or not isinstance(source.get("file"), str):
        return None
    if not is_pdf:
        return str(source["file"])
    page = source.get("page")
    if not isinstance(page, int) or isinstance(page, bool) or page < 1:
        return None
    return f"{source['file']}#{page}"


def check(questions_path: Path, corpus: Path, use_converter: bool) -> int:
    errors: list[str] = []
    pdfs = sorted(corpus.glob("*.pdf"))
    pages = sorted(corpus.glob("*.html"))
    is_pdf = bool(pdfs)
    if is_pdf and pages:
        print(f"{corpus} mixes PDF and HTML files: one kind per eval corpus", file=sys.stderr)
        return 1
    if not pdfs and not pages:
        print(f"no HTML pages or PDF files in {corpus}: run bash scripts/build_eval_corpus.sh", file=sys.stderr)
        return 1
    if is_pdf:
        visible = pdf_page_texts(pdfs)
        indexed: dict[str, str] = {}
    else:
        visible = {p.name: visible_text(p) for p in pages}
        indexed = converter_texts(pages) if use_converter else {}
    corpus_text = "\n".join(visible.values())

    seen_ids: set[str] = set()
    seen_questions: set[str] = set()
    answerable = unanswerable = multi_source = 0
    used_pages: set[str] = set()
    weak: list[str] = []
    present: list[str] = []
    items: list[dict] = []
    split_counts: dict[tuple[bool, str], int] = {}
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
        if item.get("split") not in ("dev", "test"):
            errors.append(f'{where}: split must be "dev" or "test" (scripts/assign_eval_split.py)')
        else:
            key = (item["answerable"], item["split"])
            split_counts[key] = split_counts.get(key, 0) + 1
        items.append(item)

        if not item["answerable"]:
            unanswerable += 1
            for field in ("expected_answer", "expected_sources", "answer_terms"):
                if item.get(field):
                    errors.append(f"{where}: unanswerable question has {field}")
            absent = item.get("absent_terms", [])
            if not isinstance(absent, list) or not all(isinstance(t, str) and t.strip() for t in absent):
                errors.append(f"{where}: absent_terms must be a list of strings")
                continue
            found = [t for t in absent if normalise(t) in corpus_text]
            if found:
                present.append(f"{qid} {found}")
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
            name = source_key(source, is_pdf)
            if name is None and is_pdf:
                errors.append(f"{where}: expected source {source!r} needs file and page (1-based) in a PDF corpus")
                continue
            if name is None or name not in visible:
                errors.append(f"{where}: expected source {source!r} is not a page of {corpus}")
                continue
            used_pages.add(name)
            for term in terms:
                if normalise(term) not in visible[name]:
                    errors.append(f"{where}: term {term!r} not in the {'page' if is_pdf else 'visible'} text of {name}")
                elif indexed and normalise(term) not in indexed[name]:
                    errors.append(f"{where}: term {term!r} is visible in {name} but not in the converter's text")
        hits = [n for n, text in visible.items() if all(normalise(t) in text for t in terms)]
        if len(hits) >= WEAK_TERM_PAGES:
            weak.append(f"{qid} {terms} ({len(hits)} pages)")

    if items and all(isinstance(i.get("id"), str) for i in items):
        for line in _split_rule().mismatches(items):
            errors.append(f"split does not follow the seeded rule (run scripts/assign_eval_split.py): {line}")

    for message in errors:
        print(f"ERROR {message}")
    print(f"questions: {answerable + unanswerable} ({answerable} answerable, {unanswerable} unanswerable)")
    for split in ("dev", "test"):
        print(
            f"  {split}: {split_counts.get((True, split), 0)} answerable, "
            f"{split_counts.get((False, split), 0)} unanswerable"
        )
    print(f"answerable with 2+ expected sources: {multi_source}")
    print(f"corpus pages: {len(visible)}, used as expected sources: {len(used_pages)}")
    unused = sorted(set(visible) - used_pages)
    if unused and not is_pdf:
        print(f"pages no question points to: {', '.join(unused)}")
    if present:
        print("warning: unanswerable questions whose absent_terms occur in the corpus (check they are unanswerable):")
        for line in present:
            print(f"  {line}")
    if weak:
        print(f"answer terms found in {WEAK_TERM_PAGES}+ pages (a 'contains' match on them is weak):")
        for line in weak:
            print(f"  {line}")
    checked = "pypdfium2 page text" if is_pdf else f"visible text{' + converter text' if indexed else ''}"
    print(f"checked against: {checked}")
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--set", default="sqlite", help="shipped set under eval/ (sqlite, debian-reference, gnuplot, r-manuals)"
    )
    parser.add_argument("--questions", type=Path, help="questions file (default eval/<set>/questions.jsonl)")
    parser.add_argument("--corpus", type=Path, help="corpus folder (default corpus/ beside the questions)")
    parser.add_argument("--visible-only", action="store_true", help="HTML: skip the converter-text check")
    args = parser.parse_args()
    questions = args.questions or ROOT / "eval" / args.set / "questions.jsonl"
    corpus = args.corpus or questions.parent / "corpus"
    return check(questions, corpus, use_converter=not args.visible_only)


if __name__ == "__main__":
    sys.exit(main())
