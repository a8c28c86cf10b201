"""CsvRowsToDocument on real CSVs from vega_datasets (seattle-weather.csv, airports.csv)."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

import pytest
from haystack import Document, Pipeline
from haystack.core.serialization import component_from_dict, component_to_dict
from haystack.dataclasses import ByteStream

from components.converters.csv_rows_to_document import CsvRowsToDocument
from components.converters.errors import ConversionError

SEATTLE_HEADER = "Columns: date, precipitation, temp_max, temp_min, wind, weather"


def _expected_lines(text: str, delimiter: str = ",") -> tuple[list[str], list[str]]:
    """Header and one `col: value; ...` line per data row, computed independently with the csv module."""
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    header, data = rows[0], rows[1:]
    lines = []
    for row in data:
        cells = [(header[i] if i < len(header) else f"column_{i + 1}", " ".join(v.split())) for i, v in enumerate(row)]
        line = "; ".join(f"{column}: {value}" for column, value in cells if value)
        if line:
            lines.append(line)
    return header, lines


def _check_chunks(documents: list[Document], header_line: str, expected_rows: list[str], max_chars: int) -> None:
    """Every chunk repeats the header, fits max_chars (unless one row), and no row is lost, duplicated or reordered."""
    seen_rows: list[str] = []
    previous_end = 0
    for document in documents:
        lines = document.content.split("\n")
        assert lines[0] == header_line
        assert len(lines) >= 2
        if len(lines) > 2:
            assert len(document.content) <= max_chars
        assert document.meta["row_start"] == previous_end + 1
        assert document.meta["row_end"] - document.meta["row_start"] + 1 == len(lines) - 1  # no blank rows here
        previous_end = document.meta["row_end"]
        seen_rows.extend(lines[1:])
    assert seen_rows == expected_rows


# -- init / serialization -------------------------------------------------------------------------------


def test_init_defaults() -> None:
    converter = CsvRowsToDocument()
    assert (converter.max_chars, converter.encoding, converter.delimiter, converter.raise_on_failure) == (
        1000,
        "utf-8",
        None,
        True,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_chars": 0},
        {"max_chars": -10},
        {"max_chars": True},
        {"max_chars": "1000"},
        {"encoding": "no-such-codec"},
        {"delimiter": ""},
        {"delimiter": ";;"},
        {"delimiter": "\n"},
        {"raise_on_failure": 1},
    ],
)
def test_init_rejects_invalid_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        CsvRowsToDocument(**kwargs)


def test_to_dict_from_dict_round_trip() -> None:
    converter = CsvRowsToDocument(max_chars=500, encoding="latin-1", delimiter=";", raise_on_failure=False)
    data = component_to_dict(converter, "converter")
    assert data == {
        "type": "components.converters.csv_rows_to_document.CsvRowsToDocument",
        "init_parameters": {"max_chars": 500, "encoding": "latin-1", "delimiter": ";", "raise_on_failure": False},
    }
    assert component_to_dict(component_from_dict(CsvRowsToDocument, data, "converter"), "converter") == data


# -- real files -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_chars", [1000, 300, 1])
def test_seattle_weather_no_row_lost(csv_file: Path, max_chars: int) -> None:
    documents = CsvRowsToDocument(max_chars=max_chars).run(sources=[csv_file])["documents"]
    header, expected = _expected_lines(csv_file.read_text(encoding="utf-8"))
    assert len(expected) == 1461
    _check_chunks(documents, "Columns: " + ", ".join(header), expected, max_chars)
    assert documents[0].content.split("\n")[1] == (
        "date: 2012/01/01; precipitation: 0.0; temp_max: 12.8; temp_min: 5.0; wind: 4.7; weather: drizzle"
    )
    assert documents[-1].meta["row_end"] == 1461
    if max_chars == 1:
        assert len(documents) == 1461  # at least one row per chunk, even when it does not fit
    else:
        assert len(documents) < 1461


def test_airports_quoted_fields_and_ragged_rows(csv_airports_file: Path) -> None:
    """airports.csv quotes names containing commas, and 9 rows have an 8th cell past the 7 header columns."""
    text = csv_airports_file.read_text(encoding="utf-8")
    documents = CsvRowsToDocument().run(sources=[csv_airports_file])["documents"]
    header, expected = _expected_lines(text)
    header_line = documents[0].content.split("\n")[0]
    assert header_line.startswith("Columns: " + ", ".join(header))
    _check_chunks(documents, header_line, expected, 1000)
    content = "\n".join(doc.content for doc in documents)
    assert "name: Union County, Troy Shelton; city: Union" in content


def test_sniffs_semicolon_and_tab(csv_file: Path) -> None:
    rows = list(csv.reader(io.StringIO(csv_file.read_text(encoding="utf-8"))))
    for delimiter in (";", "\t"):
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter).writerows(rows)
        stream = ByteStream(buffer.getvalue().encode(), meta={"file_name": "weather.csv"})
        documents = CsvRowsToDocument().run(sources=[stream])["documents"]
        assert documents[0].content.split("\n")[0] == SEATTLE_HEADER
        assert documents[-1].meta["row_end"] == len(rows) - 1


def test_explicit_delimiter(csv_file: Path) -> None:
    text = csv_file.read_text(encoding="utf-8").replace(",", "|")
    documents = CsvRowsToDocument(delimiter="|").run(sources=[ByteStream(text.encode())])["documents"]
    assert documents[0].content.split("\n")[0] == SEATTLE_HEADER


def test_utf8_bom_is_removed(csv_file: Path) -> None:
    stream = ByteStream(b"\xef\xbb\xbf" + csv_file.read_bytes(), meta={"file_name": "bom.csv"})
    documents = CsvRowsToDocument().run(sources=[stream])["documents"]
    assert documents[0].content.startswith(SEATTLE_HEADER)
    assert "\ufeff" not in documents[0].content


def test_bytestream_encoding_overrides_default(csv_airports_file: Path) -> None:
    text = csv_airports_file.read_text(encoding="utf-8").replace("Union County", "Uniôn County")
    latin1 = text.encode("latin-1")
    with pytest.raises(ConversionError, match="cannot decode"):
        CsvRowsToDocument().run(sources=[ByteStream(latin1, meta={"file_name": "a.csv"})])
    documents = CsvRowsToDocument().run(sources=[ByteStream(latin1, meta={"encoding": "latin-1"})])["documents"]
    assert "Uniôn County" in "\n".join(doc.content for doc in documents)


def test_ragged_and_blank_rows(csv_file: Path) -> None:
    lines = csv_file.read_text(encoding="utf-8").splitlines()[:6]
    lines[2] += ",extra cell"  # data row 2 is longer than the header
    lines[3] = ",".join(lines[3].split(",")[:2])  # data row 3 is short
    lines.insert(5, "")  # a blank line: data row 5 is empty
    documents = CsvRowsToDocument().run(sources=[ByteStream("\n".join(lines).encode())])["documents"]
    assert len(documents) == 1
    content_lines = documents[0].content.split("\n")
    assert content_lines[0] == SEATTLE_HEADER + ", column_7"
    assert content_lines[2].endswith("weather: rain; column_7: extra cell")
    assert content_lines[3] == "date: 2012/01/03; precipitation: 0.8"
    assert len(content_lines) == 1 + 5
    assert (documents[0].meta["row_start"], documents[0].meta["row_end"]) == (1, 6)


def test_multiline_cells_are_kept_on_one_line() -> None:
    data = b'name,notes\r\nLinn,"line one\nline two"\r\n'
    documents = CsvRowsToDocument().run(sources=[ByteStream(data)])["documents"]
    assert documents[0].content == "Columns: name, notes\nname: Linn; notes: line one line two"


@pytest.mark.parametrize("data", [b"", b"   \n\n", b"\xef\xbb\xbf"])
def test_empty_csv_raises(data: bytes) -> None:
    with pytest.raises(ConversionError, match="empty CSV"):
        CsvRowsToDocument().run(sources=[ByteStream(data, meta={"file_name": "empty.csv"})])


def test_header_only_csv_raises(csv_file: Path) -> None:
    header_only = csv_file.read_text(encoding="utf-8").splitlines()[0] + "\n"
    with pytest.raises(ConversionError, match="no data rows"):
        CsvRowsToDocument().run(sources=[ByteStream(header_only.encode())])


def test_binary_file_raises(png_file: Path) -> None:
    with pytest.raises(ConversionError, match="cannot decode"):
        CsvRowsToDocument().run(sources=[png_file])


def test_raise_on_failure_false_skips(csv_file: Path, png_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        documents = CsvRowsToDocument(raise_on_failure=False).run(sources=[png_file, csv_file])["documents"]
    assert documents and all(doc.meta["file_path"] == "seattle-weather.csv" for doc in documents)
    assert any("typewriter.png" in record.getMessage() for record in caplog.records)


def test_app_metadata_on_every_chunk(csv_file: Path) -> None:
    meta = {"file_name": "w.csv", "collection": "c", "document_id": "d", "content_hash": "h", "tags": ["t"]}
    stream = ByteStream(csv_file.read_bytes(), meta=dict(meta), mime_type="text/csv")
    documents = CsvRowsToDocument().run(sources=[stream], meta={"extra": 1})["documents"]
    assert len(documents) > 10
    for document in documents:
        assert {key: document.meta[key] for key in meta} == meta
        assert document.meta["extra"] == 1
    assert len({doc.id for doc in documents}) == len(documents)


PIPELINE_YAML = """
components:
  router:
    type: haystack.components.routers.file_type_router.FileTypeRouter
    init_parameters:
      mime_types: ["text/csv"]
  csv:
    type: components.converters.csv_rows_to_document.CsvRowsToDocument
    init_parameters:
      max_chars: 500
connections:
  - sender: router.text/csv
    receiver: csv.sources
"""


def test_in_yaml_pipeline(csv_file: Path) -> None:
    pipeline = Pipeline.loads(PIPELINE_YAML, allowed_modules=["components"])
    documents = pipeline.run({"router": {"sources": [csv_file]}})["csv"]["documents"]
    assert all(len(doc.content) <= 500 for doc in documents)
    assert documents[-1].meta["row_end"] == 1461
