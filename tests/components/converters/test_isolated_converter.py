"""IsolatedConverter: the inner converter runs in a worker process with a time limit and a text limit per file."""

import pickle
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool

import pytest
from haystack import Pipeline
from haystack.components.converters.txt import TextFileToDocument
from haystack.dataclasses import ByteStream

from app.settings import PROJECT_ROOT
from app.testing.fault_injecting_converter import FaultInjectingConverter
from components.converters.csv_rows_to_document import CsvRowsToDocument
from components.converters.errors import (
    ConversionError,
    OcrUnavailableError,
    ParseTimeoutError,
    TextTooLargeError,
)
from components.converters.isolated_converter import DESERIALIZATION_ALLOWLIST_ENV, IsolatedConverter

FAULTS = "app.testing.fault_injecting_converter.FaultInjectingConverter"
pytestmark = pytest.mark.integration  # starts worker processes


def _text(data: bytes, name: str = "a.txt") -> ByteStream:
    return ByteStream(data=data, meta={"file_name": name})


@pytest.mark.parametrize(
    "converter",
    [
        {"type": "os.system", "init_parameters": {}},
        {"type": "haystack.components.builders.prompt_builder.PromptBuilder", "init_parameters": {"template": "x"}},
        {"type": "components.converters.sources.source_name", "init_parameters": {}},
        {"type": "components.converters.nope.Nope", "init_parameters": {}},
        {"init_parameters": {}},
        FAULTS,  # a type name, not a serialized converter
    ],
)
def test_only_converters_of_the_allowed_packages_are_accepted(converter):
    with pytest.raises(ValueError):
        IsolatedConverter(converter=converter)


def test_the_inner_converter_parameters_are_checked_at_init():
    with pytest.raises(ValueError, match="fault"):
        IsolatedConverter(converter={"type": FAULTS, "init_parameters": {"fault": "explode"}})


def test_the_test_support_converter_needs_the_deserialization_allowlist(monkeypatch):
    IsolatedConverter(converter={"type": FAULTS, "init_parameters": {}})  # the test plugin allowlists app.testing
    for patterns in ("", "app.test", "components,app.testing.other", "app.*.fault_injecting"):
        monkeypatch.setenv(DESERIALIZATION_ALLOWLIST_ENV, patterns)
        with pytest.raises(ValueError, match="converter type must be a class in"):
            IsolatedConverter(converter={"type": FAULTS, "init_parameters": {}})
    for patterns in ("app", "app.testing.fault_injecting_converter", "x, app.testing.*"):
        monkeypatch.setenv(DESERIALIZATION_ALLOWLIST_ENV, patterns)
        IsolatedConverter(converter={"type": FAULTS, "init_parameters": {}})


def test_shipped_pipelines_never_name_the_test_support():
    shipped = sorted((PROJECT_ROOT / "pipelines").rglob("*.yml"))
    assert shipped
    assert [path for path in shipped if "app.testing" in path.read_text()] == []


@pytest.mark.parametrize("args", [{"timeout_s": 0}, {"timeout_s": "soon"}, {"max_text_chars": -1}, {"workers": 0}])
def test_invalid_limits_are_refused(args):
    with pytest.raises(ValueError):
        IsolatedConverter(converter=TextFileToDocument(), **args)


def test_round_trips_through_a_pipeline_yaml():
    pipeline = Pipeline()
    pipeline.add_component(
        "text",
        IsolatedConverter(
            converter=CsvRowsToDocument(max_chars=500), timeout_s="${RAG_PARSE_TIMEOUT_S:-300}", max_text_chars=1000
        ),
    )
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["components"])
    again = loaded.get_component("text")
    assert isinstance(again.converter, CsvRowsToDocument) and again.converter.max_chars == 500
    assert again.timeout_s == "${RAG_PARSE_TIMEOUT_S:-300}" and again.max_text_chars == 1000
    assert again.to_dict() == pipeline.get_component("text").to_dict()


def test_converts_in_a_worker_keeping_order_and_meta():
    converter = IsolatedConverter(converter=TextFileToDocument())
    converter.warm_up()
    documents = converter.run(sources=[_text(b"first"), _text(b"second", "b.txt")], meta=[{"n": 1}, {"n": 2}])[
        "documents"
    ]
    assert [d.content for d in documents] == ["first", "second"]
    assert [(d.meta["file_name"], d.meta["n"]) for d in documents] == [("a.txt", 1), ("b.txt", 2)]


def test_inner_conversion_errors_come_back_with_their_type():
    converter = IsolatedConverter(converter=CsvRowsToDocument())
    with pytest.raises(ConversionError, match="empty CSV"):
        converter.run(sources=[_text(b"   \n", "empty.csv")])


@pytest.mark.parametrize("fault", ["sleep", "spin"])
def test_a_stuck_parser_is_stopped_after_the_timeout_and_the_next_file_works(fault):
    converter = IsolatedConverter(converter=FaultInjectingConverter(fault=fault, seconds=60), timeout_s=1)
    converter.warm_up()
    started = time.monotonic()
    with pytest.raises(ParseTimeoutError, match=r"stuck.txt took longer than 1 s"):
        converter.run(sources=[_text(b"#FAULT forever", "stuck.txt")])
    assert time.monotonic() - started < 5

    assert converter.run(sources=[_text(b"fine again")])["documents"][0].content == "fine again"


def test_the_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_PARSE_TIMEOUT_S", "1")
    converter = IsolatedConverter(
        converter=FaultInjectingConverter(seconds=60), timeout_s="${RAG_PARSE_TIMEOUT_S:-300}"
    )
    with pytest.raises(ParseTimeoutError, match="longer than 1 s"):
        converter.run(sources=[_text(b"#FAULT")])


def test_a_crashing_parser_costs_the_file_not_the_process():
    converter = IsolatedConverter(converter=FaultInjectingConverter(fault="crash"), timeout_s=30)
    with pytest.raises(ConversionError, match=r"crashed on boom\.txt"):
        converter.run(sources=[_text(b"#FAULT", "boom.txt")])
    assert converter.run(sources=[_text(b"still here")])["documents"][0].content == "still here"


def test_too_much_extracted_text_fails_in_the_worker():
    converter = IsolatedConverter(converter=TextFileToDocument(), max_text_chars=10)
    assert converter.run(sources=[_text(b"0123456789")])["documents"]
    with pytest.raises(TextTooLargeError, match="has 11 characters, more than the limit of 10"):
        converter.run(sources=[_text(b"0123456789x", "bomb.txt")])


def test_converter_errors_survive_pickling():
    error = pickle.loads(pickle.dumps(OcrUnavailableError("scan.pdf needs OCR")))
    assert str(error).count("OCR not available") == 1 and "scan.pdf needs OCR" in str(error)


class _BrokenPool:
    """A pebble pool that pebble has given up: every task fails with BrokenProcessPool."""

    active = True

    def __init__(self) -> None:
        self.stopped = False

    def schedule(self, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_exception(BrokenProcessPool("All workers expired"))
        return future

    def stop(self) -> None:
        self.stopped = True


def test_a_pool_that_broke_before_warm_up_is_replaced_once(monkeypatch):
    """pebble gives up a pool whose worker ended while no task ran on it: warm-up starts a new pool, not an error."""
    import components.converters.isolated_converter as isolated

    broken = _BrokenPool()
    real = isolated._shared_pool
    pools = iter([broken])
    monkeypatch.setattr(isolated, "_shared_pool", lambda workers: next(pools, None) or real(workers))
    converter = IsolatedConverter(converter=TextFileToDocument())
    assert converter.run(sources=[_text(b"after a broken pool")])["documents"][0].content == "after a broken pool"
    assert broken.stopped


def test_a_pool_that_breaks_under_a_batch_is_replaced_and_the_batch_converted_again(monkeypatch):
    """A pool failing under a batch (not one file's crash) is not the files' doing: they are converted on a new pool;
    a second failure in a row is raised."""
    import components.converters.isolated_converter as isolated

    converter = IsolatedConverter(converter=TextFileToDocument())
    converter.warm_up()
    breaking = _BrokenPool()
    converter._pool = breaking  # the shared pool broke after warm-up
    out = converter.run(sources=[_text(b"first file"), _text(b"second file")])
    assert [doc.content for doc in out["documents"]] == ["first file", "second file"]
    assert breaking.stopped and converter._pool is not breaking

    monkeypatch.setattr(isolated, "_shared_pool", lambda workers: _BrokenPool())
    converter._pool = _BrokenPool()
    with pytest.raises(BrokenProcessPool):
        converter.run(sources=[_text(b"never converted")])
