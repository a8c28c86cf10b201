"""Ingest speed against a plain Haystack pipeline, back to back in one run, as a Markdown table.

1. ours: the PDF through the service's indexing pipeline (the shipped `pipelines/`, or `--pipelines DIR` for a
   variant), timed as in bench/ingest.py;
2. the peer: bench/peer.py (the Haystack tutorial pipeline: pypdf, 200-word chunks, all-MiniLM-L6-v2 fp32 on torch)
   in its own virtualenv, as a subprocess; create that once with `bash bench/peer_setup.sh`.
Both load their models before the clock starts. Then, untimed, each side counts every chunk's tokens
(special tokens included) and so the chunks its embedder truncated: ours with the embedder's own tokenizer over
the text it embeds (meta fields included) against its `max_length`, the peer's with the sentence-transformers
tokenizer against `max_seq_length`.

Usage (CPU-heavy, a few minutes: run it under the shared CPU lock where there is one):
    .venv/bin/python bench/ingest_vs_peer.py [PDF] [--pipelines DIR] [--peer-python /work/peer-venv/bin/python]
Default PDF: /usr/share/R/doc/manual/R-exts.pdf (236 pages); also /usr/share/debian-reference/debian-reference.en.pdf.
Target: ours >= 1.2x the peer's pages/s, with no chunk truncated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

from tokenizers import Tokenizer

from bench._common import ROOT, peak_rss_mb, percentile
from bench.ingest import DEFAULT_PDF, IngestRun, run_ingest

PEER_SCRIPT = Path(__file__).resolve().parent / "peer.py"
DEFAULT_PEER_PYTHON = Path(os.environ.get("PEER_VENV", "/work/peer-venv")) / "bin" / "python"
TARGET_RATIO = 1.2


@dataclass
class Side:
    """The figures of one pipeline in the comparison."""

    name: str
    pages: int
    chunks: int
    seconds: float
    token_lengths: list[int] | None  # tokens per chunk as the embedder sees them; None: not countable
    max_tokens: int | None  # the embedder's length: longer chunks are truncated
    peak_rss_mib: float

    @property
    def truncated(self) -> int | None:
        if self.token_lengths is None or self.max_tokens is None:
            return None
        return sum(length > self.max_tokens for length in self.token_lengths)

    @property
    def pages_per_s(self) -> float:
        return self.pages / self.seconds

    @property
    def chunks_per_s(self) -> float:
        return self.chunks / self.seconds


def token_lengths(tokenizer, texts: list[str]) -> list[int]:
    """Tokens per text (special tokens included), by a copy of a `tokenizers.Tokenizer` that neither cuts nor pads."""
    whole = Tokenizer.from_str(tokenizer.to_str())
    whole.no_truncation()
    whole.no_padding()
    return [len(encoding.ids) for encoding in whole.encode_batch(texts)]


def our_token_lengths(run: IngestRun) -> tuple[list[int] | None, int | None]:
    """(tokens per chunk, max_length) of our embedder over the chunks in the store; (None, None) if not countable.

    Counts the texts the embedder itself builds from the stored chunks of the run's collection (content plus
    `meta_fields_to_embed`) with the tokenizer of its ONNX encoder; more than `max_length` tokens is truncated.
    """
    from haystack.components.writers import DocumentWriter

    from components.embedders.onnx_backend import get_encoder
    from components.embedders.onnx_document_embedder import OnnxDocumentEmbedder
    from components.writers.document_replacer import DocumentReplacer

    components = dict(run.indexing.walk())
    embedders = [c for c in components.values() if isinstance(c, OnnxDocumentEmbedder)]
    writers = [c for c in components.values() if isinstance(c, DocumentWriter | DocumentReplacer)]
    if len(embedders) != 1 or len(writers) != 1:
        return None, None
    embedder = embedders[0]
    encoder = get_encoder(
        model=embedder.model,
        tokenizer=embedder.tokenizer,
        max_length=embedder.max_length,
        threads=embedder.threads,
        cache_dir=embedder.cache_dir,
    )
    documents = writers[0].document_store.filter_documents(
        filters={"field": "meta.collection", "operator": "==", "value": run.collection}
    )
    if len(documents) != run.result.chunks:
        held = f"the store holds {len(documents)} chunks of this run, not {run.result.chunks}"
        print(f"tokens not counted: {held}", file=sys.stderr)
        return None, None
    texts = [embedder._text_of(document) for document in documents]
    return token_lengths(encoder.tokenizer, texts), embedder.max_length


def run_ours(pdf: Path, pipelines_dir: Path | None) -> tuple[Side, str]:
    """Ingest through our pipeline; the figures and a one-line description of the embedder."""
    run = run_ingest(pdf, pipelines_dir=pipelines_dir)
    lengths, max_tokens = our_token_lengths(run)
    embedder = run.indexing.get_component("embedder") if "embedder" in dict(run.indexing.walk()) else None
    described = (
        f"{getattr(embedder, 'model', type(embedder).__name__)}, max_length {getattr(embedder, 'max_length', '?')}, "
        f"batch_size {getattr(embedder, 'batch_size', '?')}"
        if embedder is not None
        else "no component named embedder"
    )
    name = f"ours ({pipelines_dir})" if pipelines_dir is not None else "ours (shipped pipelines/)"
    side = Side(
        name=name,
        pages=run.result.pages,
        chunks=run.result.chunks,
        seconds=run.seconds,
        token_lengths=lengths,
        max_tokens=max_tokens,
        peak_rss_mib=peak_rss_mb(),
    )
    return side, described


def parse_peer_output(stdout: str) -> dict:
    """The JSON object bench/peer.py --json prints as its last non-empty stdout line."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise ValueError("bench/peer.py printed nothing on stdout")
    return json.loads(lines[-1])


def run_peer(pdf: Path, python: Path, batch_size: int) -> tuple[Side, dict]:
    """Run bench/peer.py in its own virtualenv; its figures and the raw JSON (versions, threads)."""
    if not python.is_file():
        raise SystemExit(f"no peer virtualenv at {python}: run `bash bench/peer_setup.sh` (or pass --peer-python)")
    command = [str(python), str(PEER_SCRIPT), str(pdf), "--json", "--batch-size", str(batch_size)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench/peer.py failed (exit {completed.returncode})")
    figures = parse_peer_output(completed.stdout)
    side = Side(
        name="plain Haystack peer",
        pages=int(figures["pages"]),
        chunks=int(figures["chunks"]),
        seconds=float(figures["seconds"]),
        token_lengths=[int(length) for length in figures["token_lengths"]],
        max_tokens=int(figures["max_tokens"]),
        peak_rss_mib=float(figures["peak_rss_mib"]),
    )
    return side, figures


def _truncated_cell(side: Side) -> str:
    if side.truncated is None:
        return "n/a"
    share = side.truncated / side.chunks if side.chunks else 0.0
    return f"{side.truncated} ({share:.0%}) at {side.max_tokens}"


def _tokens_cell(side: Side) -> str:
    if not side.token_lengths:
        return "n/a"
    ordered = sorted(side.token_lengths)
    return f"{percentile(ordered, 50):.0f} / {percentile(ordered, 90):.0f} / {ordered[-1]}"


def format_table(ours: Side, peer: Side) -> str:
    """The Markdown table of both sides and the ratio line (ours/peer, pages/s)."""
    rows = [
        "| pipeline | pages | chunks | seconds | pages/s | chunks/s | tokens/chunk p50 / p90 / max "
        "| chunks truncated (at tokens) | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for side in (ours, peer):
        rows.append(
            f"| {side.name} | {side.pages} | {side.chunks} | {side.seconds:.1f} | {side.pages_per_s:.1f} | "
            f"{side.chunks_per_s:.1f} | {_tokens_cell(side)} | {_truncated_cell(side)} | {side.peak_rss_mib:.0f} |"
        )
    ratio = ours.pages_per_s / peer.pages_per_s
    verdict = "met" if ratio >= TARGET_RATIO and ours.truncated == 0 else "not met"
    rows.append("")
    rows.append(f"Ours/peer pages/s: **{ratio:.2f}x** (target >= {TARGET_RATIO}x with no chunk truncated: {verdict})")
    return "\n".join(rows)


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pdf", nargs="?", default=DEFAULT_PDF)
    parser.add_argument("--pipelines", type=Path, help="our pipelines folder (indexing.yml); default: the shipped one")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON, help="python of the peer's venv")
    parser.add_argument("--peer-batch-size", type=int, default=32, help="the peer embedder's batch_size")
    args = parser.parse_args()
    pdf = Path(args.pdf)
    if not pdf.is_file():
        raise SystemExit(f"no such PDF: {pdf}")
    if not args.peer_python.is_file():
        raise SystemExit(f"no peer virtualenv at {args.peer_python}: run `bash bench/peer_setup.sh`")

    started = datetime.datetime.now(datetime.UTC)
    ours, our_embedder = run_ours(pdf, args.pipelines)
    peer, peer_figures = run_peer(pdf, args.peer_python, args.peer_batch_size)
    versions = ", ".join(f"{name} {version}" for name, version in peer_figures["versions"].items())
    print(f"- date: {started:%Y-%m-%d %H:%M} UTC; commit {_commit()}; {os.cpu_count()} cores")
    print(f"- command: `{shlex.join([_relative(Path(sys.executable)), *sys.argv])}`")
    print(f"- file: {pdf.name}")
    print(f"- ours: embedder {our_embedder}")
    print(f"- peer: batch_size {peer_figures['batch_size']}, torch threads {peer_figures['threads']}; {versions}")
    print()
    print(format_table(ours, peer))


if __name__ == "__main__":
    main()
