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
