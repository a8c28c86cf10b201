"""CSV converter: rows grouped into self-describing chunk Documents (the header is repeated in every chunk)."""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path
from typing import Any

from haystack import Document, component, logging
from haystack.dataclasses import ByteStream

from components.converters.errors import ConversionError
from components.converters.sources import convert_sources, document_meta
from components.validation import check_bool, check_int

logger = logging.getLogger(__name__)

_SNIFF_SAMPLE_CHARS = 64 * 1024
_SNIFF_DELIMITERS = ",;\t|"


def _one_line(value: str) -> str:
    """Collapse a cell onto a single line (quoted CSV fields may contain newlines)."""
    return " ".join(value.split())


@component
class CsvRowsToDocument:
    """
    Converts a CSV file into chunk Documents of whole rows, each readable on its own.

    The first row is the header. Every chunk starts with `Columns: a, b, c` and then has one line per
    row written `a: v1; b: v2; c: v3` (empty cells are left out). A chunk holds as many rows as fit in
    `max_chars` (at least one row, even a longer one). Meta `row_start` / `row_end` are the 1-based
    numbers of the first and last data row in the chunk (the header is not counted; blank rows keep
    their number but produce no line). Ragged rows are kept: extra cells get columns named `column_N`.

    These Documents are final chunks: the indexing pipeline does not split them again.
    """

    def __init__(
        self,
        *,
        max_chars: int = 1000,
        encoding: str = "utf-8",
        delimiter: str | None = None,
        raise_on_failure: bool = True,
    ) -> None:
        """
        Create the converter.

        :param max_chars: maximum characters of a chunk (exceeded only by a single over-long row).
        :param encoding: text encoding of the files, overridden by a ByteStream's meta "encoding".
            A UTF-8 byte order mark is always removed.
        :param delimiter: one-character field delimiter, or None to detect it (`,`, `;`, tab or `|`; default `,`).
        :param raise_on_failure: raise ConversionError for an unreadable file (True) or log and skip it.
        :raises ValueError: on an invalid argument.
        """
        self.max_chars = check_int(max_chars, "max_chars", minimum=1)
        try:
            codecs.lookup(encoding)
        except (LookupError, TypeError) as error:
            raise ValueError(f"unknown encoding {encoding!r}") from error
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n"):
            raise ValueError(f"delimiter must be a single character (not a newline) or None, got {delimiter!r}")
        self.encoding = encoding
        self.delimiter = delimiter
        self.raise_on_failure = check_bool(raise_on_failure, "raise_on_failure")

    @component.output_types(documents=list[Document])
    def run(
        self,
        sources: list[str | Path | ByteStream],
        meta: dict[str, Any] | list[dict[str, Any]] | None = None,
    ) -> dict[str, list[Document]]:
        """
        Convert CSV files into row-chunk Documents.

        :param sources: file paths or ByteStreams.
        :param meta: metadata for all sources (dict) or one dict per source (list); merged with ByteStream.meta.
        :returns: {"documents": [...]}
        :raises ConversionError: empty, undecodable or malformed CSV (only when raise_on_failure=True).
        """
        documents = convert_sources(sources, meta, self._convert, raise_on_failure=self.raise_on_failure)
        return {"documents": documents}

    def _decode(self, bytestream: ByteStream, name: str) -> str:
        encoding = bytestream.meta.get("encoding") or self.encoding
        try:
            text = bytestream.data.decode(encoding)
        except UnicodeDecodeError as error:
            raise ConversionError(f"cannot decode CSV {name} as {encoding}: {error}") from error
        except LookupError as error:
            raise ConversionError(f"unknown encoding {encoding!r} for CSV {name}") from error
        return text.removeprefix("\ufeff")

    def _sniff_delimiter(self, text: str) -> str:
        if self.delimiter is not None:
            return self.delimiter
        sample = text[:_SNIFF_SAMPLE_CHARS]
        if len(text) > _SNIFF_SAMPLE_CHARS and "\n" in sample:
            sample = sample[: sample.rindex("\n")]  # do not sniff a cut-off last line
        try:
            return csv.Sniffer().sniff(sample, delimiters=_SNIFF_DELIMITERS).delimiter
        except csv.Error:
            return ","

    def _convert(self, bytestream: ByteStream, metadata: dict[str, Any], name: str) -> list[Document]:
        text = self._decode(bytestream, name)
        if not text.strip():
            raise ConversionError(f"empty CSV {name}")
        delimiter = self._sniff_delimiter(text)

        try:
            rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
        except csv.Error as error:
            raise ConversionError(f"malformed CSV {name}: {error}") from error

        header_index = next((i for i, row in enumerate(rows) if any(cell.strip() for cell in row)), None)
        if header_index is None:
            raise ConversionError(f"empty CSV {name}")
        header = rows[header_index]
        data_rows = rows[header_index + 1 :]
        if not any(any(cell.strip() for cell in row) for row in data_rows):
            raise ConversionError(f"empty CSV {name}: a header but no data rows")
        columns = [_one_line(cell) or f"column_{i + 1}" for i, cell in enumerate(header)]
        # ragged rows: name the extra cells' columns so every value keeps a label
        width = max(len(row) for row in data_rows)
        columns += [f"column_{i + 1}" for i in range(len(columns), width)]
        header_line = "Columns: " + ", ".join(columns)

        base_meta = document_meta(bytestream, metadata)
        documents: list[Document] = []
        lines: list[str] = []
        size = len(header_line)
        row_start = row_end = 0

        def flush() -> None:
            if lines:
                content = "\n".join([header_line, *lines])
                documents.append(
                    Document(content=content, meta={**base_meta, "row_start": row_start, "row_end": row_end})
                )

        for row_number, row in enumerate(data_rows, start=1):
            cells = [(columns[i], _one_line(value)) for i, value in enumerate(row)]
            line = "; ".join(f"{column}: {value}" for column, value in cells if value)
            if not line:
                continue  # blank row
            if lines and size + 1 + len(line) > self.max_chars:
                flush()
                lines = []
                size = len(header_line)
            if not lines:
                row_start = row_number
            lines.append(line)
            size += 1 + len(line)
            row_end = row_number
        flush()
        return documents
