"""PDFs built in memory for the tests of PDF inspection (test support).

`page_tree_pdf` writes a PDF whose page tree has `pages` blank pages; with `xref=False` and `count=False` a reader
must rebuild the cross-reference table by scanning the whole file and then walk every page to count them, as a
crafted PDF forces it to: 200,000 pages make a 12 MB file that costs PDFium about a second, more on a loaded machine.
"""

from __future__ import annotations

import io


def page_tree_pdf(pages: int, *, xref: bool = True, count: bool = True) -> bytes:
    """A PDF of `pages` blank pages, with or without a cross-reference table and the page tree's /Count."""
    first_page = 3
    kids = b" ".join(b"%d 0 R" % number for number in range(first_page, first_page + pages))
    total = b"/Count %d " % pages if count else b""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages " + total + b"/Kids [" + kids + b"] >>",
        *[b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"] * pages,
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    if not xref:
        out.write(b"trailer\n<< /Root 1 0 R >>\n%%EOF\n")
        return out.getvalue()
    start = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, start))
    return out.getvalue()


def _pdf_text(text: str) -> bytes:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)").encode("latin-1")


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per item of `pages`, each a list of text lines (Helvetica 10 pt, Latin-1), so that a
    test can change the text of one page and keep every other page's bytes and extracted text the same."""
    objects: list[bytes] = [b"", b"", b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for lines in pages:
        stream = (
            b"BT /F1 10 Tf 12 TL 40 800 Td " + b" ".join(b"(" + _pdf_text(line) + b") '" for line in lines) + b" ET"
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
        content = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> "
            b"/Contents %d 0 R >>" % content
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[0] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (len(pages), b" ".join(kids))
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    start = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % offset for offset in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, start))
    return out.getvalue()
