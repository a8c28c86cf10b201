"""bench/ingest_vs_peer.py: truncation counting, the peer's output and the Markdown table (no torch needed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
from tokenizers import Tokenizer

from components.embedders.onnx_backend import DEFAULT_MODEL, resolve_tokenizer_path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ingest_vs_peer.py"


def _load() -> ModuleType:
    if "ingest_vs_peer" not in sys.modules:
        spec = importlib.util.spec_from_file_location("ingest_vs_peer", SCRIPT)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["ingest_vs_peer"] = module
        spec.loader.exec_module(module)
    return sys.modules["ingest_vs_peer"]


bench = _load()


def _side(name: str = "ours", *, seconds: float = 10.0, truncated: int | None = 0):
    """236 pages, 600 chunks of 100..255 tokens, `truncated` of them 300 tokens long (None: not countable)."""
    lengths = None if truncated is None else [100 + i % 156 for i in range(600 - truncated)] + [300] * truncated
    return bench.Side(
        name=name, pages=236, chunks=600, seconds=seconds, token_lengths=lengths, max_tokens=256, peak_rss_mib=500.0
    )


def test_token_lengths_count_special_tokens_and_ignore_the_embedders_truncation():
    tokenizer = Tokenizer.from_file(str(resolve_tokenizer_path(DEFAULT_MODEL)))
    tokenizer.enable_truncation(max_length=16)  # as the ONNX encoder's tokenizer is set up
    assert bench.token_lengths(tokenizer, ["word " * 14, "word " * 15, "short", "word " * 40]) == [16, 17, 3, 42]
    assert tokenizer.truncation is not None  # the embedder's own tokenizer is left as it was


def test_truncated_counts_chunks_longer_than_the_embedders_length():
    assert _side(truncated=7).truncated == 7
    side = _side()
    side.token_lengths = [256, 257]
    assert side.truncated == 1


def test_table_gives_both_rows_and_the_ratio_of_pages_per_second():
    table = bench.format_table(_side(seconds=10.0), _side("plain Haystack peer", seconds=15.0, truncated=500))
    lines = table.splitlines()
    assert lines[2].startswith("| ours | 236 | 600 | 10.0 | 23.6 | 60.0 | 175 / 235 / 255 | 0 (0%) at 256 |")
    assert lines[3].startswith(
        "| plain Haystack peer | 236 | 600 | 15.0 | 15.7 | 40.0 | 300 / 300 / 300 | 500 (83%) at 256 |"
    )
    assert "**1.50x**" in lines[-1] and lines[-1].endswith(": met)")


@pytest.mark.parametrize(
    ("ours", "reason"),
    [
        (_side(seconds=13.0), "slower than 1.2x the peer"),
        (_side(seconds=10.0, truncated=1), "a chunk truncated"),
        (_side(seconds=10.0, truncated=None), "truncation not countable"),
    ],
)
def test_target_is_not_met_when_slow_or_truncating(ours, reason):
    line = bench.format_table(ours, _side("peer", seconds=15.0)).splitlines()[-1]
    assert line.endswith("not met)"), reason


def test_uncountable_truncation_shows_as_not_available():
    assert "| n/a | n/a |" in bench.format_table(_side(truncated=None), _side("peer"))


def test_peer_output_is_the_last_json_line():
    assert bench.parse_peer_output('Loading weights\n{"pages": 3}\n\n') == {"pages": 3}
    with pytest.raises(ValueError, match="printed nothing"):
        bench.parse_peer_output("\n")
